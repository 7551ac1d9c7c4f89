"""The sidebar's model settings, errors with Retry on the page, keys never shown, and trimming (AppTest)."""

import json
import logging

from llama_index.core.base.llms.types import MessageRole

from tests.fake_keys import GROQ, fake
from tests.test_pages import HOME, MEMORY, SIMPLE, chat_texts, run, send
from view.model_settings import SYSTEM_PROMPT_PRESETS
from view.style import CONVERSATION_PREFIX

FAKE_KEY = fake(GROQ, "FAKEKEY_must_never_leak_7c3e")
MASKED = f"{FAKE_KEY[:4]}…7c3e"


def everything_rendered(at, skip_key: str | None = None) -> str:
    """Every element the page holds (labels, text, values), as the text of its protobuf."""

    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(
        str(getattr(node, "proto", "")) + str(getattr(node, "value", ""))
        for node in walk(at._tree)
        if skip_key is None or getattr(node, "key", None) != skip_key
    )


def test_switching_provider_and_model_applies_to_the_next_message(app_env, fault):
    at = send(run(MEMORY), "First, on the local model.")
    first_reply = at.session_state["memory_chat"].messages[-1]
    assert first_reply.model == "smollm2-135m-instruct" and fault.attempts == 0
    at.selectbox(key="set_provider").select("openai_like").run()
    at.text_input(key="set_base_url").input(fault.base_url).run()
    # the models are listed from the server's /models, and its first is chosen: never the local model's
    assert at.selectbox(key="set_model_openai_like").options == ["fault-model"]
    assert at.selectbox(key="set_model_openai_like").value == "fault-model"
    assert any(m.value == "**OpenAI-compatible** · `fault-model`" for m in at.sidebar.markdown)
    send(at, "Second, through the OpenAI-compatible provider.")
    sent = fault.bodies[-1]  # what the newly chosen server received
    assert sent["model"] == "fault-model" and sent["stream"] is True
    history = [(m["role"], m["content"]) for m in sent["messages"] if m["role"] != "system"]
    assert history == [
        ("user", "First, on the local model."),
        ("assistant", first_reply.content),
        ("user", "Second, through the OpenAI-compatible provider."),
    ]  # the same conversation went on, now to the other provider
    assert chat_texts(at)[-1] == ("assistant", "Hello from the fault server.")


def test_switching_system_prompt_and_limits_applies_to_the_next_message(app_env, fault, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    at = run(SIMPLE)
    at.selectbox(key="set_preset").select("Concise").run()
    at.number_input(key="set_max_tokens").set_value(32).run()
    at.slider(key="set_temperature").set_value(0.0).run()
    send(at, "Hi")
    sent = fault.bodies[-1]
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT_PRESETS["Concise"]}
    assert (sent["max_tokens"], sent["temperature"]) == (32, 0.0)
    assert sent["messages"][-1] == {"role": "user", "content": "Hi"}


def test_custom_system_prompt_reaches_the_memory_agent(app_env, fault, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    at = run(MEMORY)
    at.selectbox(key="set_preset").select("Custom").run()
    at.text_area(key="set_system_prompt").input("You are a pirate.").run()
    send(at, "Hello")
    assert fault.bodies[-1]["messages"][0] == {"role": "system", "content": "You are a pirate."}


def test_failure_shows_error_keeps_message_and_retry_sends_it_again(app_env, fault, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    monkeypatch.setenv("LLM_MODEL", "fault-model")
    app_env.write_text(json.dumps({"kept": []}), encoding="utf-8")
    at = run(MEMORY)
    at.button(
        key=[b.key for b in at.sidebar.button if b.key and b.key.startswith(CONVERSATION_PREFIX)][0]
    ).click().run()
    fault.mode = "500"
    send(at, "Do not lose me")
    assert any("server error (500)" in e.value for e in at.error)
    assert ("user", "Do not lose me") in chat_texts(at)
    assert json.loads(app_env.read_text(encoding="utf-8"))["kept"][0]["content"] == "Do not lose me"
    assert fault.attempts == 3
    labels = [b.label for b in at.button]
    assert "Retry" in labels and "Answer with the local model instead" in labels
    assert "Traceback" not in everything_rendered(at)
    fault.mode = "ok"
    at.button(key="memory_retry").click().run()
    assert chat_texts(at)[-1] == ("assistant", "Hello from the fault server.")
    assert not at.error


def test_fallback_button_answers_with_the_local_model(app_env, fault, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    fault.mode = "500"
    at = send(run(SIMPLE), "Anyone there?")
    at.button(key="simple_fallback").click().run()
    chat = at.session_state["simple_chat"]
    assert chat.messages[-1].model == "smollm2-135m-instruct" and chat.messages[-1].content.strip()
    assert chat.config.provider == "openai_like"


def test_keys_never_reach_the_page_the_logs_or_the_file(app_env, fault, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    fault.mode = "401"
    home = run(HOME)
    at = send(run(MEMORY), "My key should stay secret")
    next(b for b in at.sidebar.button if b.label == "Save").click().run()
    at.sidebar.text_input(key="memory_save_name").input("secret test")
    next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
    assert any(f"rejected the API key ({MASKED})" in e.value for e in at.error)
    out, err = capfd.readouterr()
    for where, text in {
        "home page": everything_rendered(home),
        "memory page": everything_rendered(at),
        "logs": caplog.text + out + err,
        "conversations.json": app_env.read_text(encoding="utf-8"),
    }.items():
        assert FAKE_KEY not in text, f"the key leaked into the {where}"
        assert "FAKEKEY_must_never" not in text, f"part of the key leaked into the {where}"


def test_key_typed_in_the_sidebar_is_used_and_shown_masked(app_env, fault, monkeypatch):
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url)
    at = run(MEMORY)
    at.selectbox(key="set_provider").select("groq").run()
    assert any("No API key" in e.value for e in at.sidebar.error)
    at.text_input(key="set_key_groq").input(FAKE_KEY).run()
    assert any(MASKED in c.value for c in at.sidebar.caption)
    send(at, "hello")
    assert at.session_state["memory_chat"].config.api_key == FAKE_KEY
    assert chat_texts(at)[-1] == ("assistant", "Hello from the fault server.")
    assert FAKE_KEY not in everything_rendered(at, skip_key="set_key_groq")


def test_300_message_conversation_is_trimmed_and_still_answered(app_env):
    long = {
        "long": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"Message {i}: " + "the quick brown fox jumps " * 4,
            }
            for i in range(300)
        ]
    }
    app_env.write_text(json.dumps(long), encoding="utf-8")
    at = run(MEMORY)
    at.button(
        key=[b.key for b in at.sidebar.button if b.key and b.key.startswith(CONVERSATION_PREFIX)][0]
    ).click().run()
    send(at, "What was the last message about?")
    chat = at.session_state["memory_chat"]
    assert not at.error, [e.value for e in at.error]
    assert chat.messages[-1].role is MessageRole.ASSISTANT and chat.messages[-1].content.strip()
    assert 0 < chat.budget.left_out < 300
    assert chat.budget.sent_tokens <= chat.budget.token_limit
    line = next(c for c in at.caption if c.value.startswith("Memory: "))
    assert line.value == f"Memory: {chat.budget.sent_tokens:,} of {chat.budget.token_limit:,} tokens"
    assert "older messages left out to fit" in line.help


def test_home_says_whether_the_provider_answers(app_env, fault, monkeypatch):
    assert any("The provider answers" in s.value for s in run(HOME).success)
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", fault.base_url.replace(str(fault.base_url.split(":")[-1].split("/")[0]), "9"))
    assert any("Could not reach" in e.value for e in run(HOME).error)
