"""Stop, regenerate with versions, edit and resend, feedback, automatic titles and files in the chat:
the model and controller layers, on the real local model where a model answers."""

import json
from dataclasses import replace

import pytest

from controller.chat import Chat
from controller.engines import AgentEngine, PlainEngine
from controller.errors import ChatError
from model.conversation import auto_title_of
from model.json_store import JsonFileStore
from model.message import Message
from model.transfer import export_feedback, export_json, parse_import
from model.versions import add_version, all_branches, choose_version, version_count
from tests.fault_server import RecordingProxy
from tests.kb_files import FACTS, all_files
from tests.servers import disconnected_since

LONG = "Write a very long story about a dragon, in twenty chapters of 500 words each."


def two_versions() -> list[Message]:
    """A conversation whose answer was regenerated once (version 2 of 2 chosen)."""
    question = Message.user("Name a colour.")
    old, new = Message.assistant("Red.", model="m"), Message.assistant("Blue.", model="m")
    return add_version([question, new], 1, [old])


# ----- model: versions and feedback in conversations.json -------------------------------------
def test_versions_switch_both_ways_and_keep_each_branch():
    messages = two_versions()
    assert version_count(messages[1]) == 2 and messages[1].version_index == 1
    first = choose_version(messages, 1, 0)
    assert first[1].content == "Red." and first[1].version_index == 0
    assert [m.content for m in choose_version(first, 1, 1)] == ["Name a colour.", "Blue."]
    with pytest.raises(IndexError):
        choose_version(messages, 1, 2)


def test_an_edit_keeps_the_old_branch_with_everything_after_it():
    old = [
        Message.user("My name is Ada."),
        Message.assistant("Hi Ada."),
        Message.user("Name?"),
        Message.assistant("Ada."),
    ]
    edited = add_version([Message.user("My name is Grace.")], 0, old)
    branches = all_branches(edited, 0)
    assert [[m.content for m in b] for b in branches] == [
        ["My name is Ada.", "Hi Ada.", "Name?", "Ada."],
        ["My name is Grace."],
    ]
    back = choose_version(edited, 0, 0)
    assert [m.content for m in back] == ["My name is Ada.", "Hi Ada.", "Name?", "Ada."]
    assert [b[0].content for b in all_branches(back, 0)] == ["My name is Ada.", "My name is Grace."]


def test_versions_and_feedback_round_trip_through_save_load_export_and_import(tmp_path):
    rated = Message.assistant("Blue.", model="m")
    messages = two_versions()
    messages[1] = Message.from_dict({**messages[1].to_dict(), "feedback": {"rating": -1, "comment": "meh"}})
    store = JsonFileStore(tmp_path / "conversations.json")
    store.save("Colours", messages)
    assert JsonFileStore(tmp_path / "conversations.json").get("Colours") == messages
    exported = export_json("Colours", messages)
    assert parse_import(exported)["Colours"] == messages
    # readers of the plain format ({"role", "content"} only) see the chosen version
    raw = json.loads((tmp_path / "conversations.json").read_text(encoding="utf-8"))["Colours"]
    assert [(m["role"], m["content"]) for m in raw] == [("user", "Name a colour."), ("assistant", "Blue.")]
    assert raw[1]["versions"][0][0]["content"] == "Red." and raw[1]["feedback"]["rating"] == -1
    assert rated.feedback is None


def test_bad_extra_keys_are_ignored_not_fatal():
    message = Message.from_dict(
        {"role": "assistant", "content": "x", "versions": "nope", "version_index": 7, "feedback": {"rating": 5}}
    )
    assert (message.versions, message.version_index, message.feedback) == ((), 0, None)


def test_feedback_export_is_json_lines_of_question_answer_model_rating_comment():
    rated = Message.from_dict(
        {"role": "assistant", "content": "Blue.", "model": "m", "feedback": {"rating": 1, "comment": "good"}}
    )
    text = export_feedback({"Colours": [Message.user("Name a colour."), rated, Message.assistant("unrated")]})
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines == [
        {
            "conversation": "Colours",
            "question": "Name a colour.",
            "answer": "Blue.",
            "model": "m",
            "rating": 1,
            "comment": "good",
            "timestamp": None,
        }
    ]


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("What colour is the sky?", "What colour is the sky?"),
        ("one two three four five six seven eight", "one two three four five six…"),
        ("   \n  ", "New chat"),
        ("Supercalifragilisticexpialidocious" * 3, "Supercalifragilisticexpialidocious" * 3 + "…"),
    ],
)
def test_automatic_titles_are_the_first_words(text, title):
    assert auto_title_of(Message.user(text)).startswith(title[:40].rstrip("…"))
    assert len(auto_title_of(Message.user(text))) <= 41


# ----- controllers on the real local model -------------------------------------------------------
@pytest.fixture
def store(tmp_path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "conversations.json")


def test_a_new_chat_is_saved_from_its_first_message_under_a_unique_title(local_config, store):
    store.save(
        "Hello there", [Message.from_dict({"role": "user", "content": "older", "timestamp": "2026-01-01T00:00:00Z"})]
    )
    chat = Chat(AgentEngine.from_defaults(local_config), store, auto_title=True)
    "".join(chat.send("Hello there"))
    assert chat.name == "Hello there (2)"
    assert [m.role.value for m in store.get("Hello there (2)")] == ["user", "assistant"]
    assert store.names()[0] == "Hello there (2)"  # newest first


def test_the_api_and_worker_chats_are_not_auto_titled(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    "".join(chat.send("Hello"))
    assert chat.name is None and store.names() == []


def test_regenerate_keeps_the_old_answer_as_a_version_and_the_memory_uses_the_chosen_one(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    chat.save_as("Colours")
    first = "".join(chat.send("Name a colour."))
    second = "".join(chat.regenerate())
    assert second.strip() and version_count(chat.messages[1]) == 2
    saved = store.get("Colours")
    assert saved == chat.messages
    assert saved[1].versions[0][0].content == first.strip()
    chat.choose_version(1, 0)
    assert chat.messages[1].content == first.strip()
    assert [m.content for m in chat.memory().get_all()] == ["Name a colour.", first.strip()]
    assert store.get("Colours")[1].version_index == 0


def test_regenerate_without_an_answer_is_refused(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    with pytest.raises(ChatError, match="no answer to regenerate"):
        chat.regenerate()


def test_edit_makes_a_branch_and_the_memory_sends_the_edited_text(local_config, local_server, store):
    proxy = RecordingProxy(local_server.base_url).start()
    try:
        chat = Chat(AgentEngine.from_defaults(replace(local_config, base_url=proxy.base_url)), store)
        chat.save_as("Names")
        "".join(chat.send("My name is Ada."))
        "".join(chat.send("What is my name?"))
        "".join(chat.edit(0, "My name is Grace."))
        "".join(chat.send("What is my name?"))
        sent = json.dumps(proxy.bodies[-1]["messages"])
    finally:
        proxy.stop()
    assert "Grace" in sent and "Ada" not in sent
    assert [m.content for m in chat.messages[::2]] == ["My name is Grace.", "What is my name?"]
    old = all_branches(chat.messages, 0)[0]
    assert [m.content for m in old][::2] == ["My name is Ada.", "What is my name?"]
    assert store.get("Names") == chat.messages


def test_feedback_is_saved_on_the_message(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    chat.save_as("Rated")
    "".join(chat.send("Hello"))
    chat.set_feedback(1, -1, "  too short  ")
    feedback = store.get("Rated")[1].feedback
    assert feedback.rating == -1 and feedback.comment == "too short" and feedback.timestamp
    with pytest.raises(ValueError):
        chat.set_feedback(0, 1)


@pytest.mark.parametrize("engine", [AgentEngine, PlainEngine])
def test_stop_keeps_the_text_marked_stopped_and_closes_the_http_stream(local_config, local_server, store, engine):
    if local_server.process is None:
        pytest.skip("the local server was started by someone else: its log is not readable here")
    config = replace(local_config, max_tokens=2000, temperature=0.0)
    chat = Chat(engine.from_defaults(config), store if engine is AgentEngine else None)
    before = sum("Disconnected from client" in line for line in local_server.log_lines())
    reply = chat.send(LONG)
    got = [next(reply) for _ in range(3)]
    reply.close()
    assert chat.messages[-1].stopped and chat.messages[-1].incomplete
    assert chat.messages[-1].content == "".join(got).strip()
    assert disconnected_since(local_server, before)


@pytest.mark.parametrize("name", list(FACTS))
def test_each_file_type_in_the_chat_goes_to_the_model_and_is_answered(local_config, local_server, store, name):
    data = dict(all_files())[name]
    proxy = RecordingProxy(local_server.base_url).start()
    try:
        chat = Chat(AgentEngine.from_defaults(replace(local_config, base_url=proxy.base_url)), store)
        reply = "".join(chat.send(f"What does {name} say?", [(name, data)]))
        sent = json.dumps(proxy.bodies[-1]["messages"])
    finally:
        proxy.stop()
    assert reply.strip()
    assert FACTS[name][1] in sent and f"[Attached file: {name}]" in sent
    attachment = chat.messages[0].attachments[0]
    assert attachment.name == name and attachment.used_chars == attachment.total_chars > 0
    assert chat.messages[0].content == f"What does {name} say?"  # the file's text is kept apart


def test_a_big_file_is_cut_to_the_context_budget_with_how_much_was_sent(local_config, store):
    chat = Chat(PlainEngine.from_defaults(local_config))
    big = ("All work and no play makes Jack a dull boy. " * 4000).encode()
    "".join(chat.send("Summarise this.", [("big.txt", big)]))
    attachment = chat.messages[0].attachments[0]
    assert 0 < attachment.used_chars < attachment.total_chars == len(big.decode())
    assert chat.budget.sent_tokens <= chat.budget.token_limit


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [("notes.txt", "caf\xe9".encode("latin-1"), "not UTF-8"), ("tool.exe", b"MZ\x90", "not supported")],
)
def test_a_bad_file_is_named_and_nothing_is_sent(local_config, store, name, data, reason):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    with pytest.raises(ChatError) as error:
        chat.send("Read this", [(name, data)])
    assert name in str(error.value) and reason in str(error.value)
    assert error.value.refused_text == "Read this" and chat.messages == []
