"""The memory page's Tools sidebar with AppTest: the warning when Python cannot be isolated, a loaded
conversation's tools chosen again, saved tool calls shown, and a JSON-mode reply that is not JSON."""

import json

from streamlit.testing.v1 import AppTest

from tests.test_pages import MEMORY, run

SAVED = {
    "Sums": [
        {"role": "user", "content": "What is 6 times 7?", "tools": ["calculator"]},
        {
            "role": "assistant",
            "content": "It is 42.",
            "tool_calls": [
                {"id": "call_1", "name": "calculator", "arguments": '{"expression": "6*7"}', "result": "42", "round": 0}
            ],
        },
        {"role": "user", "content": "Answer in JSON.", "tools": ["calculator"]},
        {"role": "assistant", "content": "not json {", "json_mode": True},
    ]
}


def load(at: AppTest, name: str) -> AppTest:
    at.session_state["memory_chat"].load(name)
    at.run()
    assert not at.exception, at.exception
    return at


def test_where_python_cannot_be_isolated_run_python_is_off_and_the_sidebar_says_why(app_env, monkeypatch):
    monkeypatch.setattr("view.tools.isolation", lambda: "none")
    monkeypatch.setattr("controller.tools.isolation", lambda: "none")
    at = run(MEMORY)
    assert not at.exception, at.exception
    assert at.sidebar.multiselect[0].options == ["Calculator", "Date and time", "Web search"]  # no "Run Python"
    assert any("Run Python is off" in w.value and "bubblewrap" in w.value for w in at.sidebar.warning)


def test_where_python_is_isolated_choosing_it_says_how(app_env, monkeypatch):
    monkeypatch.setattr("view.tools.isolation", lambda: "full")
    monkeypatch.setattr("controller.tools.isolation", lambda: "full")
    at = run(MEMORY)
    at.sidebar.multiselect[0].select("python").run()
    assert not at.exception, at.exception
    assert any("Python runs isolated" in c.value for c in at.sidebar.caption)
    assert at.session_state["memory_chat"].tools == ("python",)


def test_a_loaded_conversation_brings_back_its_tools_calls_and_json_note(app_env):
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    at = load(run(MEMORY), "Sums")
    assert at.sidebar.multiselect[0].value == ["calculator"]
    reply = at.chat_message[1]
    assert [e.label for e in reply.expander] == ["Used Calculator"]
    assert "42" in [c.value for c in reply.expander[0].code]
    assert any("not valid JSON" in c.value for c in at.chat_message[3].caption)
    assert at.chat_message[3].markdown[0].value == "not json {"


def test_choosing_tools_on_a_saved_conversation_is_saved_with_it(app_env):
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    at = load(run(MEMORY), "Sums")
    at.sidebar.multiselect[0].select("clock").run()
    assert not at.exception, at.exception
    stored = json.loads(app_env.read_text(encoding="utf-8"))["Sums"]
    assert stored[2]["tools"] == ["calculator", "clock"]
