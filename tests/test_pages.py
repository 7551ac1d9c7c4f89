"""Page tests with Streamlit's AppTest, on the real local model; one behaviour per test."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from view.common import widget_key
from view.style import CONVERSATION_PREFIX

APP_DIR = Path(__file__).resolve().parent.parent
HOME = str(APP_DIR / "Home.py")
SIMPLE = str(APP_DIR / "pages" / "1_Simple_Chat.py")
MEMORY = str(APP_DIR / "pages" / "2_Chatbot_With_Memory.py")
TIMEOUT = 120  # seconds for one run on the real model; a bound, not a measurement

SAVED_FILE = {
    "Meeting Ada": [
        {"role": "user", "content": "Hi, my name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada!"},
    ],
    "Other": [{"role": "user", "content": "Something else"}],
}


def run(path: str) -> AppTest:
    at = AppTest.from_file(path, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def chat_texts(at: AppTest) -> list[tuple[str, str]]:
    return [(m.name, m.markdown[0].value) for m in at.chat_message]


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def sidebar_buttons(at: AppTest) -> list[str]:
    return [b.key or b.label for b in at.sidebar.button]


def item(name: str) -> str:
    """The key of a conversation's one-click item in the sidebar list."""
    return widget_key(CONVERSATION_PREFIX, name)


def test_home_names_the_local_provider_and_model(app_env):
    at = run(HOME)
    text = " ".join(m.value for m in at.markdown)
    assert "Local" in text and "smollm2-135m-instruct" in text
    assert not at.error


def test_simple_chat_send_message_gets_a_reply(app_env):
    at = send(run(SIMPLE), "What colour is the sky?")
    messages = chat_texts(at)
    assert [role for role, _ in messages] == ["user", "assistant"]
    assert messages[0][1] == "What colour is the sky?"
    assert messages[1][1].strip()
    assert not at.error
    assert not app_env.exists()  # the simple chat saves nothing


def test_simple_chat_sends_the_whole_history(app_env):
    at = send(send(run(SIMPLE), "My favourite number is 7."), "What did I just say?")
    chat = at.session_state["simple_chat"]
    # system prompt + the first turn (2 messages) + the new message
    assert (chat.budget.sent_messages, chat.budget.left_out) == (4, 0)
    assert [m.content for m in chat.memory().get()] == [m.content for m in chat.messages]
    assert len(chat_texts(at)) == 4


def test_memory_send_message_gets_a_reply(app_env):
    at = send(run(MEMORY), "Hello there!")
    messages = chat_texts(at)
    assert [role for role, _ in messages] == ["user", "assistant"]
    assert messages[1][1].strip()
    assert not at.error


def test_save_confirm_save_writes_the_file(app_env):
    at = send(run(MEMORY), "Remember that my cat is called Tom.")
    next(b for b in at.sidebar.button if b.label == "Save").click().run()
    at.sidebar.text_input(key="memory_save_name").input("Cat facts")
    next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
    saved = json.loads(app_env.read_text(encoding="utf-8"))
    assert [m["role"] for m in saved["Cat facts"]] == ["user", "assistant"]
    assert saved["Cat facts"][0]["content"] == "Remember that my cat is called Tom."
    assert any("Saved as" in s.value for s in at.sidebar.success)
    assert item("Cat facts") in sidebar_buttons(at)


def test_load_into_a_fresh_session_renders_the_messages(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    assert chat_texts(at) == []
    at.button(key=item("Meeting Ada")).click().run()
    assert chat_texts(at) == [("user", "Hi, my name is Ada."), ("assistant", "Nice to meet you, Ada!")]
    memory = [m.content for m in at.session_state["memory_chat"].memory().get_all()]
    assert memory == ["Hi, my name is Ada.", "Nice to meet you, Ada!"]


def test_delete_removes_it_from_the_file_and_the_sidebar(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=widget_key("delete", "Meeting Ada")).click().run()
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Meeting Ada", "Other"]  # asks first
    at.button(key=widget_key("confirm-delete", "Meeting Ada")).click().run()
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Other"]
    assert widget_key("delete", "Meeting Ada") not in sidebar_buttons(at)
    assert widget_key("delete", "Other") in sidebar_buttons(at)
    assert any("Deleted" in s.value for s in at.sidebar.success)


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_name_is_refused_with_a_message(app_env, name):
    at = send(run(MEMORY), "Hi")
    next(b for b in at.sidebar.button if b.label == "Save").click().run()
    at.sidebar.text_input(key="memory_save_name").input(name)
    next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
    assert any("enter a name" in e.value for e in at.sidebar.error)
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Hi"]  # only its automatic title
    assert len(at.session_state["memory_chat"].messages) == 2


def test_saving_over_an_existing_name_asks_first(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = send(run(MEMORY), "A new conversation")
    next(b for b in at.sidebar.button if b.label == "Save").click().run()
    at.sidebar.text_input(key="memory_save_name").input("Other")
    next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
    assert any("already exists" in w.value for w in at.sidebar.warning)
    assert json.loads(app_env.read_text(encoding="utf-8"))["Other"] == SAVED_FILE["Other"]
    next(b for b in at.sidebar.button if b.label == "Replace").click().run()
    saved = json.loads(app_env.read_text(encoding="utf-8"))
    assert saved["Other"][0]["content"] == "A new conversation"
    assert "A new conversation" not in saved  # the automatic title was renamed, not copied


def test_corrupt_file_is_moved_aside_and_the_user_is_told(app_env):
    app_env.write_text("{ this is not json", encoding="utf-8")
    at = run(MEMORY)
    warnings = " ".join(w.value for w in at.sidebar.warning)
    aside = list(app_env.parent.glob("conversations.json.corrupt-*"))
    assert len(aside) == 1 and str(aside[0]) in warnings
    assert aside[0].read_text(encoding="utf-8") == "{ this is not json"


def test_named_conversation_auto_saves_each_turn(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=item("Meeting Ada")).click().run()
    send(at, "What is my name?")
    saved = json.loads(app_env.read_text(encoding="utf-8"))["Meeting Ada"]
    assert [m["role"] for m in saved] == ["user", "assistant", "user", "assistant"]
    assert saved[2]["content"] == "What is my name?" and saved[3]["content"].strip()


def test_delete_can_be_cancelled(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=widget_key("delete", "Other")).click().run()
    assert any("Delete “Other”?" in m.value for m in at.markdown)  # in the dialog
    at.button(key=widget_key("cancel-delete", "Other")).click().run()
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Meeting Ada", "Other"]
    assert widget_key("delete", "Other") in sidebar_buttons(at)


def test_rename_changes_the_file_and_the_open_conversation(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=item("Meeting Ada")).click().run()
    at.text_input(key=widget_key("new-name", "Meeting Ada")).input("  Ada, again 🎉  ")
    at.button(key=widget_key("rename", "Meeting Ada")).click().run()
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Other", "Ada, again 🎉"]
    assert at.session_state["memory_chat"].name == "Ada, again 🎉"
    assert item("Ada, again 🎉") in sidebar_buttons(at)


def test_search_filters_by_name_and_content(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.text_input(key="memory_search").input("something ELSE").run()
    assert item("Other") in sidebar_buttons(at)
    assert item("Meeting Ada") not in sidebar_buttons(at)
    at.text_input(key="memory_search").input("zzz-no-match").run()
    assert any("No saved conversation matches" in c.value for c in at.sidebar.caption)


def test_new_chat_starts_an_empty_unnamed_conversation(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=item("Meeting Ada")).click().run()
    next(b for b in at.sidebar.button if b.label == "New chat").click().run()
    assert chat_texts(at) == []
    chat = at.session_state["memory_chat"]
    assert chat.name is None and chat.memory().get_all() == []
    assert json.loads(app_env.read_text(encoding="utf-8")) == SAVED_FILE  # nothing saved or lost


@pytest.mark.parametrize("name", ["Café ☕ 日本語 🚀", "long " * 100])
def test_unicode_and_very_long_names_save_and_show_shortened(app_env, name):
    at = send(run(MEMORY), "Hi")
    next(b for b in at.sidebar.button if b.label == "Save").click().run()
    at.sidebar.text_input(key="memory_save_name").input(name)
    next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
    assert name.strip() in json.loads(app_env.read_text(encoding="utf-8"))
    assert item(name.strip()) in sidebar_buttons(at)
    if len(name) > 40:
        assert any(len(s.value) < 120 for s in at.sidebar.success)


def test_restore_from_backup_brings_back_a_deleted_conversation(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=widget_key("delete", "Other")).click().run()
    at.button(key=widget_key("confirm-delete", "Other")).click().run()
    assert "Other" not in json.loads(app_env.read_text(encoding="utf-8"))
    at.button(key="memory_restore").click().run()
    assert json.loads(app_env.read_text(encoding="utf-8")) == SAVED_FILE
    assert any("Restored" in s.value for s in at.sidebar.success)


def test_long_list_shows_the_newest_first_then_more_on_request(app_env):
    many = {
        f"chat {i:02d}": [{"role": "user", "content": "x", "timestamp": f"2026-01-01T00:00:{i:02d}Z"}]
        for i in range(35)
    }
    app_env.write_text(json.dumps(many), encoding="utf-8")
    at = run(MEMORY)
    loads = [k for k in sidebar_buttons(at) if k.startswith(CONVERSATION_PREFIX)]
    assert len(loads) == 30 and loads[0] == item("chat 34")
    at.button(key="memory_show_more").click().run()
    assert len([k for k in sidebar_buttons(at) if k.startswith(CONVERSATION_PREFIX)]) == 35


def test_auto_save_failure_is_shown_and_the_turn_is_kept(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=item("Meeting Ada")).click().run()
    app_env.unlink()
    app_env.mkdir()  # the file can no longer be read or replaced
    send(at, "Keep me even if saving fails")
    assert any("Could not read" in e.value and str(app_env) in e.value for e in at.main.error), [
        e.value for e in at.error
    ]
    assert not at.exception
    chat = at.session_state["memory_chat"]
    assert [m.content for m in chat.messages][2] == "Keep me even if saving fails"
    assert chat.messages[3].role.value == "assistant" and chat.messages[3].content.strip()
    assert chat_texts(at)[2] == ("user", "Keep me even if saving fails")


def test_deleting_the_open_conversation_keeps_it_on_screen_unnamed(app_env):
    app_env.write_text(json.dumps(SAVED_FILE), encoding="utf-8")
    at = run(MEMORY)
    at.button(key=item("Meeting Ada")).click().run()
    at.button(key=widget_key("delete", "Meeting Ada")).click().run()
    at.button(key=widget_key("confirm-delete", "Meeting Ada")).click().run()
    assert "Meeting Ada" not in json.loads(app_env.read_text(encoding="utf-8"))
    assert at.session_state["memory_chat"].name is None
    assert any(c.value.startswith("New conversation") for c in at.main.caption)
    assert chat_texts(at) == [("user", "Hi, my name is Ada."), ("assistant", "Nice to meet you, Ada!")]
    send(at, "Still here?")
    # not saved back under the old name, but kept under an automatic title from its first message
    assert list(json.loads(app_env.read_text(encoding="utf-8"))) == ["Other", "Hi, my name is Ada."]


def test_the_admin_page_without_accounts_says_it_is_for_sign_in(app_env):
    at = AppTest.from_file(str(APP_DIR / "pages" / "6_Admin.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == [
        "The Admin page is for Parley with sign-in on (see Help); without it, Parley has one user."
    ]
    assert not at.table


def test_the_account_page_without_accounts_points_to_parley_api_keys(app_env):
    at = AppTest.from_file(str(APP_DIR / "pages" / "7_Account.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert len(at.info) == 1 and "PARLEY_API_KEYS" in at.info[0].value
    assert not at.button and not at.table
