"""One contract, three backends: the same tests on the JSON file store, PostgreSQL and Redis (real
servers from Debian's packages, throwaway instances on free ports)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
from llama_index.core.base.llms.types import MessageRole

from model.message import Attachment, Feedback, Message, Source, ToolCall
from model.store import LOCAL_OWNER, BaseConversationStore, StoreError
from model.stores import open_store
from model.transfer import export_json, parse_import
from tests.conftest import APP_DIR

BACKENDS = ["file", "postgresql", "redis"]


@pytest.fixture
def location(request, tmp_path, pg_server, redis_server) -> str:
    """A fresh, empty store location of the backend the test is parametrised with."""
    backend = request.param
    if backend == "file":
        return str(tmp_path / "conversations.json")
    if backend == "postgresql":
        return pg_server.new_database()
    redis_server.flush()
    return redis_server.url()


@pytest.fixture
def store(location) -> BaseConversationStore:
    opened = open_store(location)
    yield opened
    opened.close()


pytestmark = pytest.mark.parametrize("location", BACKENDS, indirect=True)


def turn(i: int, who: str = "user", minute: int = 0) -> Message:
    role = MessageRole.USER if who == "user" else MessageRole.ASSISTANT
    return Message(role, f"{who} message {i}", f"2026-11-22T10:{minute:02d}:{i % 60:02d}Z")


def test_save_then_get_round_trips_every_field(store):
    source = Source(file_name="a.txt", where="page 2", score=0.5, text="x")
    call = ToolCall(id="c1", name="calculator", arguments='{"expression": "6*7"}', result="42", round=0)
    messages = [
        replace(turn(0), tools=("calculator", "kb:Plant"), attachments=(Attachment("a.txt", "x", 1, 1),)),
        Message(MessageRole.ASSISTANT, "**bold** reply", "2026-11-22T10:00:01Z", model="m", incomplete=True),
        Message(MessageRole.ASSISTANT, "from the KB", knowledge_base="Plant", sources=(source,), turn_id="t1"),
        replace(
            Message.assistant("42", model="m"),
            tool_calls=(call, replace(call, id="c2", error=True, round=1, sources=(source,))),
            feedback=Feedback(-1, "meh", "2026-11-22T10:00:02Z"),
            versions=((Message.assistant("41"), Message.user("no")),),
            version_index=1,
            json_mode=True,
            stopped=True,
        ),
        replace(Message.assistant("cut at the token lim", model="m"), cut=True),
    ]
    assert store.save("  Chat one  ", messages) == "Chat one"
    assert store.get("Chat one") == messages
    assert store.get("nobody") is None
    assert store.exists("Chat one") and not store.exists("nobody")


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_blank_names_are_refused(store, name):
    with pytest.raises(StoreError, match="enter a name"):
        store.save(name, [turn(0)])
    assert store.names() == []


def test_an_empty_conversation_exists(store):
    store.save("Empty", [])
    assert store.get("Empty") == [] and store.names() == ["Empty"]


def test_save_replaces_and_names_are_newest_first(store):
    store.save("old", [turn(1, minute=1)])
    store.save("new", [turn(1, minute=5)])
    store.save("middle", [turn(1, minute=3)])
    assert store.names() == ["new", "middle", "old"]
    store.save("old", [turn(2, minute=9)])
    assert store.names()[0] == "old" and store.get("old") == [turn(2, minute=9)]


def test_append_adds_at_the_end_and_creates(store):
    assert store.append("log", [turn(0)]) == 1
    assert store.append("log", [turn(1, "assistant"), turn(2)]) == 3
    assert [m.content for m in store.get("log")] == ["user message 0", "assistant message 1", "user message 2"]


def test_rename_and_its_errors(store):
    store.save("a", [turn(0)])
    store.save("b", [turn(1)])
    assert store.rename("a", "  Ada 🎉 ") == "Ada 🎉"
    assert store.get("Ada 🎉") == [turn(0)] and store.get("a") is None
    with pytest.raises(StoreError, match="already exists"):
        store.rename("Ada 🎉", "b")
    with pytest.raises(StoreError, match="no saved conversation called 'gone'"):
        store.rename("gone", "x")
    with pytest.raises(StoreError, match="enter a name"):
        store.rename("b", "   ")
    assert sorted(store.names()) == ["Ada 🎉", "b"]


def test_delete_removes_only_that_one(store):
    store.save("keep", [turn(0)])
    store.save("drop", [turn(1)])
    store.delete("drop")
    store.delete("never existed")
    assert store.names() == ["keep"] and store.get("drop") is None


def test_search_by_name_and_content_ignoring_case(store):
    store.save("Trip to Lisbon", [Message(MessageRole.USER, "Pastéis de nata are great")])
    store.save("Work", [Message(MessageRole.USER, "The QUARTERLY report")])
    assert store.search("lisbon") == ["Trip to Lisbon"]
    assert store.search("quarterly") == ["Work"]
    assert store.search("Pastéis") == ["Trip to Lisbon"]
    assert store.search("100%_") == []
    assert sorted(store.search("  ")) == ["Trip to Lisbon", "Work"]


def test_summaries_page_through_the_list(store):
    for i in range(5):
        store.save(f"c{i}", [turn(j, minute=i) for j in range(i + 1)])
    page, total = store.summaries(offset=1, limit=2)
    assert total == 5
    assert [(s.name, s.messages) for s in page] == [("c3", 4), ("c2", 3)]
    assert page[0].last_activity == "2026-11-22T10:03:03Z"


def test_import_and_export_in_the_plain_format(store):
    plain = {"Plain chat": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    assert store.import_conversations(parse_import(json.dumps(plain)), replace=False) == ["Plain chat"]
    assert store.import_conversations(parse_import(json.dumps(plain)), replace=False) == ["Plain chat (imported)"]
    assert json.loads(export_json("Plain chat", store.get("Plain chat"))) == plain
    assert store.import_conversations(parse_import(json.dumps(plain)), replace=True) == ["Plain chat"]
    assert sorted(store.load_all()) == ["Plain chat", "Plain chat (imported)"]


@pytest.mark.parametrize("name", ["Café ☕ 日本語", "🚀🔥", "x" * 300, "a/b\\c\"d'e<script>", "tab\tand\nnewline"])
def test_names_with_any_unicode(store, name):
    store.save(name, [turn(0)])
    assert name in store.names() and store.get(name) == [turn(0)]


def test_a_thousand_message_conversation(store):
    messages = [turn(i, "user" if i % 2 == 0 else "assistant", minute=i // 60) for i in range(1000)]
    store.save("long", messages)
    assert store.get("long") == messages
    store.append("long", [turn(1000)])
    assert len(store.get("long")) == 1001


def test_two_writers_appending_200_each_keep_all_400_in_each_writers_order(store, location):
    script = textwrap.dedent(
        """
        import sys
        from model.message import Message
        from model.stores import open_store
        store = open_store(sys.argv[1])
        for i in range(200):
            store.append("shared", [Message.user(f"{sys.argv[2]} {i}")])
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, location, who], cwd=APP_DIR, stderr=subprocess.PIPE, text=True)
        for who in ("alpha", "beta")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-2000:]
    messages = [m.content for m in store.get("shared")]
    assert len(messages) == 400
    for who in ("alpha", "beta"):
        assert [m for m in messages if m.startswith(who)] == [f"{who} {i}" for i in range(200)]


def test_text_holding_nul_is_stored_as_it_is(store):
    """U+0000 (e.g. from an attached file) round-trips everywhere; PostgreSQL's jsonb cannot hold it
    as it is, so that store escapes it."""
    message = replace(Message.user("before\x00after \ue000 escape"), attachments=(Attachment("nul.txt", "a\x00b"),))
    store.save("with nul", [message])
    store.append("with nul", [Message.assistant("reply\x00")])
    assert store.get("with nul") == [message, store.get("with nul")[1]]
    assert store.get("with nul")[1].content == "reply\x00"
    assert store.search("after") == ["with nul"] and store.search("\x00") == store.names()
    with pytest.raises(StoreError, match="NUL"):
        store.save("bad\x00name", [turn(0)])


def test_rename_can_replace_a_taken_name_in_one_step(store):
    store.save("Auto title", [turn(0), turn(1, "assistant")])
    store.save("Chosen", [turn(9)])
    with pytest.raises(StoreError, match="already exists"):
        store.rename("Auto title", "Chosen")
    assert store.rename("Auto title", "Chosen", replace=True) == "Chosen"
    assert store.get("Chosen") == [turn(0), turn(1, "assistant")] and store.get("Auto title") is None
    with pytest.raises(StoreError, match="no saved conversation"):
        store.rename("Auto title", "Chosen", replace=True)
    assert store.get("Chosen") == [turn(0), turn(1, "assistant")]  # a failed replace changes nothing


def test_an_append_racing_a_rename_is_kept(store, location):
    """Another instance appends to the conversation while this one renames it ("Save" under a new
    name): every appended message ends up in one of the two names, none lost."""
    script = textwrap.dedent(
        """
        import sys
        from model.message import Message
        from model.stores import open_store
        store = open_store(sys.argv[1])
        print("ready", flush=True)
        for i in range(100):
            store.append("Draft", [Message.user(f"turn {i}")])
        """
    )
    store.save("Draft", [turn(0)])
    writer = subprocess.Popen([sys.executable, "-c", script, location], cwd=APP_DIR, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    while len(store.get("Draft") or []) < 10:  # rename in the middle of the appends
        time.sleep(0.001)
    store.rename("Draft", "Final", replace=True)
    writer.wait(120)
    kept = [m.content for name in ("Final", "Draft") for m in store.get(name) or []]
    assert sorted(kept) == sorted(["user message 0", *(f"turn {i}" for i in range(100))])


def test_a_kill_during_a_rename_leaves_exactly_one_name(store, location):
    script = textwrap.dedent(
        """
        import sys
        from model.stores import open_store
        store = open_store(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.readline()
        store.rename("Old", "New", replace=True)
        print("renamed", flush=True)
        """
    )
    messages = [turn(i) for i in range(50)]
    for attempt in range(6):
        store.save("Old", messages)
        renamer = subprocess.Popen(
            [sys.executable, "-c", script, location],
            cwd=APP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert renamer.stdout.readline().strip() == "ready"
        renamer.stdin.write("go\n")
        renamer.stdin.flush()
        time.sleep(attempt * 0.002)  # kill it at a different moment of the rename each time
        renamer.kill()
        renamer.wait()
        names = [n for n in ("Old", "New") if store.get(n) is not None]
        assert len(names) == 1 and store.get(names[0]) == messages, (attempt, names)
        if names == ["New"]:
            store.delete("New")


def test_preferences_round_trip_per_owner_and_replace(store, location):
    assert store.preferences() == {}
    chosen = {"provider": "groq", "models": {"groq": "llama-3.1-8b-instant"}, "temperature": 0.3, "note": "a\x00b"}
    store.save_preferences(chosen)
    store.save_preferences({"provider": "openai"}, owner="ada@example.com")
    again = open_store(location)  # another instance (another Parley process) reads what was kept
    assert again.preferences() == chosen
    assert again.preferences("ada@example.com") == {"provider": "openai"}
    store.save_preferences({"provider": "local"})
    assert again.preferences() == {"provider": "local"}


def test_preferences_that_are_not_a_small_json_object_are_refused(store):
    with pytest.raises(StoreError):
        store.save_preferences({"system_prompt": "x" * 70_000})
    with pytest.raises(StoreError):
        store.save_preferences({"when": object()})
    assert store.preferences() == {}


# ----- assistants ----------------------------------------------------------------------------------
def test_assistants_round_trip_with_ids_from_their_names(store, location):
    from model.assistant import Assistant

    made = store.create_assistant(
        Assistant(
            id="",
            name="  Recipe helper ",
            emoji="🍲",
            description="Cooks.",
            instructions="You help with recipes.",
            provider="local",
            temperature=0.3,
            tools=("calculator", "kb:recipes"),
            json_mode=True,
            starters=("What can I cook?", "  "),
        )
    )
    assert made.id == "recipe-helper" and made.name == "Recipe helper" and made.starters == ("What can I cook?",)
    assert made.created and made.created == made.updated
    again = open_store(location)
    assert again.assistant("recipe-helper") == made and again.assistants() == [made]
    second = store.create_assistant(Assistant(id="", name="Recipe-helper!"))
    assert second.id == "recipe-helper-2"  # same slug, another name
    changed = store.update_assistant(replace(made, name="Chef", instructions="You are a chef."))
    assert changed.id == "recipe-helper" and changed.created == made.created
    assert [a.name for a in open_store(location).assistants()] == ["Chef", "Recipe-helper!"]
    store.create_assistant(Assistant(id="", name="Recipe helper"))  # the old name is free again
    store.delete_assistant("recipe-helper")
    assert store.assistant("recipe-helper") is None
    with pytest.raises(StoreError, match="no assistant"):
        store.delete_assistant("recipe-helper")


@pytest.mark.parametrize("name", ["", "   ", "python TUTOR", "parley", "Taken"])
def test_an_empty_or_taken_assistant_name_is_refused(store, name):
    from model.assistant import Assistant

    store.create_assistant(Assistant(id="", name="taken"))
    with pytest.raises(StoreError) as refused:
        store.create_assistant(Assistant(id="", name=name))
    assert "name" in str(refused.value)
    assert [a.name for a in store.assistants()] == ["taken"]


def test_built_in_assistants_are_not_changed_or_deleted(store):
    from model.assistant import BUILT_INS

    tutor = store.assistant("python-tutor")
    assert tutor in BUILT_INS and tutor.tools == ("python",)
    with pytest.raises(StoreError, match="built in"):
        store.update_assistant(replace(tutor, instructions="changed"))
    with pytest.raises(StoreError, match="cannot be deleted"):
        store.delete_assistant("python-tutor")
    assert store.assistants() == []  # built-ins are never stored


def test_assistants_import_and_export_and_a_broken_file_adds_nothing(store):
    from model.assistant import Assistant

    store.create_assistant(Assistant(id="", name="Existing"))
    exported = json.dumps({"assistants": [a.to_dict() for a in store.assistants()]})
    good = json.dumps([{"name": "Imported one", "starters": ["Hi"]}, {"name": "Imported two", "emoji": "🦉"}])
    added = store.import_assistants(good)
    assert [a.id for a in added] == ["imported-one", "imported-two"]
    for broken, reason in [
        ("{not json", "not JSON"),
        (json.dumps({"assistants": "nope"}), "expected a list"),
        (json.dumps([{"name": "Fine"}, {"name": 3}]), "Assistant 2 in the file"),
        (json.dumps([{"name": "Fine"}, {"name": "existing"}]), "'existing' already exists"),
        (json.dumps([{"name": "Twice"}, {"name": "twice"}]), "already exists"),
        (json.dumps([{"name": "Fine", "temperature": 9}]), "temperature"),
    ]:
        with pytest.raises(StoreError, match=reason):
            store.import_assistants(broken)
    assert [a.name for a in store.assistants()] == ["Existing", "Imported one", "Imported two"]
    with pytest.raises(StoreError, match="already exists"):
        store.import_assistants(exported)  # its own export clashes by name


def test_two_writers_creating_assistants_keep_all_and_one_name_wins_once(store, location):
    script = textwrap.dedent(
        """
        import sys
        from model.assistant import Assistant
        from model.store import StoreError
        from model.stores import open_store
        store = open_store(sys.argv[1])
        won = 0
        for i in range(15):
            store.create_assistant(Assistant(id="", name=f"{sys.argv[2]} {i}"))
            try:
                store.create_assistant(Assistant(id="", name=f"Shared {i}"))
                won += 1
            except StoreError:
                pass
        print(won)
        """
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, location, who],
            cwd=APP_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("alpha", "beta")
    ]
    wins = 0
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-2000:]
        wins += int(out.strip())
    names = [a.name for a in store.assistants()]
    assert wins == 15 and len(names) == 45 and len(set(n.casefold() for n in names)) == 45
    assert {f"Shared {i}" for i in range(15)} <= set(names)


def _image_message(digest: str, name: str = "chart.png") -> Message:
    image = Attachment(name, "", sha256=digest, mime="image/png")
    return replace(turn(0), attachments=(image,))


def test_attachments_are_kept_once_by_sha256_and_survive_a_reopen(store, location):
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    digest = store.put_attachment(data, "image/png")
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put_attachment(data, "image/png") == digest  # the same bytes, kept once
    store.save("pictured", [_image_message(digest)])
    again = open_store(location)
    try:
        blob = again.attachment(digest)
        assert blob is not None and blob.data == data and blob.mime == "image/png"
        assert again.get("pictured")[0].attachments[0].sha256 == digest
        assert again.attachment("0" * 64) is None and again.attachment("../../etc/passwd") is None
    finally:
        again.close()


def test_deleting_a_conversation_deletes_the_images_no_other_conversation_uses(store):
    store.attachment_grace = 0.0
    shared = store.put_attachment(b"shared image", "image/png")
    own = store.put_attachment(b"own image", "image/png")
    chart = store.put_attachment(b"a chart", "image/png")
    call = ToolCall(
        id="c1",
        name="run_python",
        arguments="{}",
        result="ok",
        images=(Attachment("c.png", "", sha256=chart, mime="image/png"),),
    )
    store.save("first", [_image_message(shared), replace(Message.assistant("see"), tool_calls=(call,))])
    store.save("second", [_image_message(shared), _image_message(own)])
    store.delete("second")
    assert store.attachment(own) is None
    assert store.attachment(shared) is not None and store.attachment(chart) is not None
    store.delete("first")
    assert store.attachment(shared) is None and store.attachment(chart) is None


def test_a_young_unused_attachment_is_not_collected(store):
    digest = store.put_attachment(b"just uploaded", "image/png")
    store.save("other", [turn(0)])
    store.delete("other")  # the default grace keeps an attachment whose message may not be saved yet
    assert store.attachment(digest) is not None
    assert store.collect_attachments(grace=0.0) == 1 and store.attachment(digest) is None


# ----- owners (accounts) ---------------------------------------------------------------------------
ADA, BOB = "ada-subject-1", "bob/subject:2 ü"  # any subject: slashes, colons and Unicode are safe


def test_each_owner_sees_and_changes_only_their_own_conversations(store, location):
    ada, bob = store.owned_by(ADA), store.owned_by(BOB)
    assert store.owned_by(store.owner) is store and ada.owner == ADA and bob.owner == BOB
    assert ada.owned_by(LOCAL_OWNER).owner == LOCAL_OWNER and bob.owned_by(ADA).owner == ADA
    store.save("Plans", [turn(0)])  # the person at this machine, before accounts
    assert bob.owned_by(LOCAL_OWNER).get("Plans") == [turn(0)]
    ada.save("Plans", [turn(1), turn(2, "assistant")])  # the same name is another conversation per owner
    bob.append("Plans", [turn(3)])
    bob.save("Bob only", [replace(turn(4), content="the secret word is heron")])
    assert store.get("Plans") == [turn(0)] and ada.get("Plans") == [turn(1), turn(2, "assistant")]
    assert bob.get("Plans") == [turn(3)]
    assert store.names() == ["Plans"] and ada.names() == ["Plans"] and set(bob.names()) == {"Plans", "Bob only"}
    assert ada.get("Bob only") is None and not ada.exists("Bob only") and ada.summary("Bob only") is None
    assert ada.search("heron") == [] and bob.search("heron") == ["Bob only"]
    assert ada.summaries()[1] == 1 and bob.summaries()[1] == 2 and list(ada.load_all()) == ["Plans"]
    with pytest.raises(StoreError):
        ada.rename("Bob only", "Mine")  # another owner's conversation does not exist for Ada
    ada.delete("Bob only")  # nothing to delete for Ada
    assert bob.get("Bob only") is not None
    bob.rename("Plans", "Bob plans")
    assert ada.get("Plans") == [turn(1), turn(2, "assistant")] and store.get("Plans") == [turn(0)]
    ada.delete("Plans")
    assert store.get("Plans") == [turn(0)] and bob.get("Bob plans") == [turn(3)]
    again = open_store(location).owned_by(BOB)  # another process of the same owner sees the same
    try:
        assert set(again.names()) == {"Bob plans", "Bob only"}
    finally:
        again.close()


def test_attachments_and_settings_belong_to_their_owner(store):
    ada, bob = store.owned_by(ADA), store.owned_by(BOB)
    for each in (ada, bob):
        each.attachment_grace = 0.0
    digest = ada.put_attachment(b"ada's photo", "image/png")
    assert ada.attachment(digest) is not None
    assert bob.attachment(digest) is None and store.attachment(digest) is None  # knowing the hash is not enough
    assert bob.put_attachment(b"ada's photo", "image/png") == digest  # Bob's own copy of the same bytes
    ada.save("pictured", [_image_message(digest)])
    bob.save("pictured", [_image_message(digest)])
    ada.delete("pictured")  # Ada's copy goes; Bob's stays, still used by his conversation
    assert ada.attachment(digest) is None and bob.attachment(digest) is not None
    ada.save_preferences({"provider": "groq"})
    assert ada.preferences() == {"provider": "groq"} and bob.preferences() == {} and store.preferences() == {}


@pytest.mark.parametrize("owner", ["", "x" * 256, "tab\there", "nul\x00"])
def test_an_owner_that_is_not_a_printable_id_is_refused(store, owner):
    with pytest.raises(StoreError):
        store.owned_by(owner)


def test_accounts_are_one_list_every_owner_shares(store, location):
    store.owned_by(BOB).record_account(BOB, "bob@example.com", "Bob", "2026-12-02T10:00:00Z")
    store.record_account(ADA, "ada@example.com", "Ada", "2026-12-02T10:00:00Z")
    store.record_account(ADA, "ada@example.org", "Ada L.", "2026-12-02T11:00:00Z")  # signed in again, new e-mail
    again = open_store(location).owned_by(ADA)
    try:
        assert [tuple(a) for a in again.accounts()] == [
            (ADA, "ada@example.org", "Ada L.", "2026-12-02T11:00:00Z"),
            (BOB, "bob@example.com", "Bob", "2026-12-02T10:00:00Z"),
        ]
    finally:
        again.close()
    with pytest.raises(StoreError):
        store.record_account("", "nobody@example.com", "Nobody", "")


def test_assign_owner_gives_the_local_owners_data_to_someone_who_signed_in(store):
    from model.assign_owner import assign_owner

    with pytest.raises(StoreError, match="No one has signed in as"):
        assign_owner(store, "ada@example.com")
    store.record_account(ADA, "Ada@Example.com", "Ada", "2026-12-02T10:00:00Z")
    digest = store.put_attachment(b"a photo from before accounts", "image/png")
    store.save("Holiday", [_image_message(digest), turn(1, "assistant")])
    store.save("Recipes", [turn(2)])
    store.save_preferences({"provider": "groq"})
    ada = store.owned_by(ADA)
    ada.save("Recipes", [turn(3)])  # a name Ada already uses: both kept
    account, saved = assign_owner(store, "ada@example.com")  # found by e-mail, ignoring case
    assert account.subject == ADA and sorted(saved) == ["Holiday", "Recipes (imported)"]
    assert ada.get("Holiday") == [_image_message(digest), turn(1, "assistant")] and ada.get("Recipes") == [turn(3)]
    assert ada.get("Recipes (imported)") == [turn(2)] and ada.attachment(digest) is not None
    assert ada.preferences() == {"provider": "groq"}
    assert store.names() == []  # nothing left with the local owner
    assert assign_owner(store, ADA)[1] == []  # again, by subject: nothing more to move


def test_api_keys_are_shown_once_kept_hashed_and_refused_once_revoked_on_every_instance(store, location):
    from model.api_keys import KEY_PREFIX, ApiKeys

    keys = ApiKeys(store.owned_by(BOB))  # any owner's view: the keys are shared records
    made, key = keys.make(ADA, "  laptop  ")
    assert key.startswith(KEY_PREFIX) and made.owner == ADA and made.name == "laptop" and made.revoked is None
    stored = json.dumps(store.records("api_keys"))
    assert key not in stored and key.split("-")[-1] not in stored  # only a salted hash is kept
    other = open_store(location)  # a second instance on the same store
    try:
        elsewhere = ApiKeys(other)
        found = elsewhere.owner_of(key)
        assert found is not None and (found.owner, found.id) == (ADA, made.id)
        assert [k.last_used is not None for k in elsewhere.of(ADA)] == [True]
        assert elsewhere.owner_of(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # one character off
        assert elsewhere.owner_of("not-a-parley-key") is None
        with pytest.raises(StoreError, match="already have a key called"):
            keys.make(ADA, "LAPTOP")
        bobs, bob_key = keys.make(BOB, "laptop")  # the same name for someone else is fine
        assert not keys.revoke(BOB, made.id)  # Bob cannot revoke Ada's key
        assert keys.revoke(ADA, made.id)
        assert elsewhere.owner_of(key) is None  # refused by the other instance at its next check
        assert [(k.name, k.revoked is not None) for k in keys.of(ADA)] == [("laptop", True)]
        assert keys.revoke_all(BOB) == 1 and elsewhere.owner_of(bob_key) is None
        with pytest.raises(StoreError, match="name of 1 to"):
            keys.make(ADA, "   ")
    finally:
        other.close()
