"""What makes Parley feel like ChatGPT, page logic with AppTest (a new AppTest is a reload: a new
session): settings that stick, provider and model labels that match, the conversation's URL, the
list (one click, highlighted, look-alikes apart, knowledge-base chats marked, grouped by day),
"Continue", the memory line, and words for users. The browser tests (test_browser_ux.py) check
the same in Chromium, with the layout."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_pages import HOME, MEMORY, SIMPLE, chat_texts, run, send
from view.common import widget_key
from view.conversations import list_label, when_of
from view.model_settings import BUNDLED, BUNDLED_LABEL
from view.style import CONVERSATION_PREFIX

APP = __import__("pathlib").Path(__file__).resolve().parent.parent
KB = str(APP / "pages" / "3_Knowledge_Base.py")
HELP = str(APP / "pages" / "4_Help.py")


def item(at: AppTest, name: str):
    return at.button(key=widget_key(CONVERSATION_PREFIX, name))


def sidebar_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.sidebar.markdown)


def saved_file(app_env) -> dict:
    return json.loads(app_env.read_text(encoding="utf-8"))


def test_settings_survive_a_reload_and_no_key_is_saved(app_env):
    at = run(SIMPLE)
    at.selectbox(key="set_preset").select("Concise").run()
    at.slider(key="set_temperature").set_value(0.3).run()
    at.number_input(key="set_max_tokens").set_value(96).run()
    at.selectbox(key="set_provider").select("groq").run()
    at.text_input(key="set_key_groq").input("gsk_typed_in_this_tab_only_1234").run()
    at.selectbox(key="set_provider").select("local").run()

    again = run(MEMORY)  # a reload: a new session, on another page
    assert again.selectbox(key="set_preset").value == "Concise"
    assert again.slider(key="set_temperature").value == 0.3
    assert again.number_input(key="set_max_tokens").value == 96
    saved = (app_env.parent / "preferences.json").read_text(encoding="utf-8")
    assert "gsk_typed" not in saved and json.loads(saved)["local"]["preset"] == "Concise"


def test_tools_chosen_last_are_the_new_chats_tools_after_a_reload(app_env):
    at = run(MEMORY)
    at.multiselect(key=widget_key("memory_tools", "")).select("calculator").run()
    again = run(MEMORY)
    assert again.multiselect(key=widget_key("memory_tools", "")).value == ["calculator"]


def test_switching_provider_shows_that_providers_model_and_never_mixes_them(app_env):
    at = run(MEMORY)
    assert "**Local** · `smollm2-135m-instruct`" in sidebar_text(at)
    at.selectbox(key="set_provider").select("groq").run()
    assert "**Groq** · `llama-3.3-70b-versatile`" in sidebar_text(at)
    assert at.text_input(key="set_model_text_groq").value == "llama-3.3-70b-versatile"
    at.text_input(key="set_model_text_groq").input("llama-3.1-8b-instant").run()
    at.selectbox(key="set_provider").select("openai").run()
    assert "**OpenAI** · `gpt-4o-mini`" in sidebar_text(at)
    at.selectbox(key="set_provider").select("groq").run()  # each provider keeps its own model
    assert "**Groq** · `llama-3.1-8b-instant`" in sidebar_text(at)
    at.selectbox(key="set_provider").select("local").run()
    assert "**Local** · `smollm2-135m-instruct`" in sidebar_text(at)


def test_the_local_model_picker_shows_the_model_in_use_on_a_new_tab(app_env):
    at = run(MEMORY)
    picker = at.sidebar.selectbox(key="set_local_model")
    assert picker.value == BUNDLED and picker.format_func(picker.value) == BUNDLED_LABEL


SAVED = {
    "Weather in Paris today": [
        {"role": "user", "content": "How is the weather?", "timestamp": "2026-11-30T10:00:00Z"},
        {"role": "assistant", "content": "Sunny.", "timestamp": "2026-11-30T10:00:01Z"},
    ],
    "Plant notes": [
        {
            "role": "user",
            "content": "When does the valve open?",
            "knowledge_base": "plant",
            "timestamp": "2026-11-29T09:00:00Z",
        },
        {"role": "assistant", "content": "At 42 kPa.", "knowledge_base": "plant", "timestamp": "2026-11-29T09:00:01Z"},
    ],
}


def test_the_url_opens_its_conversation_and_an_unknown_one_is_said(app_env):
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    at = AppTest.from_file(MEMORY, default_timeout=120)
    at.query_params["conversation"] = "Weather in Paris today"
    at.run()
    assert chat_texts(at) == [("user", "How is the weather?"), ("assistant", "Sunny.")]
    assert item(at, "Weather in Paris today").proto.type == "secondary"  # highlighted as the open one

    at = AppTest.from_file(MEMORY, default_timeout=120)
    at.query_params["conversation"] = "Gone away"
    at.run()
    assert chat_texts(at) == []
    assert any("no saved conversation called “Gone away”" in w.value for w in at.sidebar.warning)


def test_one_click_opens_a_conversation_the_url_follows_and_new_chat_clears_it(app_env):
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    at = run(MEMORY)
    assert item(at, "Weather in Paris today").proto.type == "tertiary"
    item(at, "Weather in Paris today").click().run()
    assert chat_texts(at)[0] == ("user", "How is the weather?")
    assert at.query_params["conversation"] == "Weather in Paris today"
    assert item(at, "Weather in Paris today").proto.type == "secondary"
    at.button(key="memory_new_chat").click().run()
    assert chat_texts(at) == [] and "conversation" not in at.query_params


def test_a_knowledge_base_chat_is_marked_and_a_new_chats_first_message_lists_it_at_once(app_env):
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    at = run(MEMORY)
    assert item(at, "Plant notes").label.startswith("📚 ")
    assert not item(at, "Weather in Paris today").label.startswith("📚")
    send(at, "Hello there")
    assert item(at, "Hello there").proto.type == "secondary"  # listed, highlighted, in its own URL
    assert at.query_params["conversation"] == "Hello there"


def test_look_alike_names_stay_apart_when_shortened():
    first = "What is the weather like in Paris today and tomorrow"
    assert list_label(f"{first} (2)") != list_label(first)
    assert list_label(f"{first} (2)").endswith("… \\(2\\)")
    assert list_label(f"{first} (imported 3)").endswith("… \\(imported 3\\)")
    assert list_label("Short") == "Short"
    assert len(list_label(first)) <= 26


@pytest.mark.parametrize(
    ("stamp", "group", "when"),
    [
        ("2026-11-30T14:05:00Z", "Today", "15:05"),
        ("2026-11-29T09:30:00Z", "Yesterday", "10:30"),
        ("2026-11-25T09:30:00Z", "Previous 7 days", "Wed"),
        ("2026-11-12T09:30:00Z", "Previous 30 days", "12 Nov"),
        ("2025-11-12T09:30:00Z", "November 2025", "12 Nov"),
        ("", "Older", ""),
    ],
)
def test_list_items_are_grouped_by_day_in_the_browsers_time_zone(stamp, group, when):
    assert when_of(stamp, date(2026, 11, 30), ZoneInfo("Europe/Paris")) == (group, when)


def test_a_cut_reply_offers_continue_which_extends_the_same_message(app_env, monkeypatch):
    monkeypatch.setenv("LLM_MAX_TOKENS", "16")
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    at = send(run(MEMORY), "Write a very long story about a dragon, in twenty chapters.")
    chat = at.session_state["memory_chat"]
    assert chat.messages[-1].cut
    assert any("reached the token limit" in c.value for c in at.main.caption)
    before = chat.messages[-1].content
    next(b for b in at.main.button if b.label == "Continue").click().run()
    chat = at.session_state["memory_chat"]
    assert len(chat.messages) == 2 and chat.messages[-1].content.startswith(before)
    assert len(chat.messages[-1].content) > len(before)
    assert chat_texts(at)[1][1] == chat.messages[-1].content
    assert saved_file(app_env)[chat.name][-1]["content"] == chat.messages[-1].content


def test_the_memory_line_is_in_words_with_the_detail_in_its_tooltip(app_env):
    at = send(run(SIMPLE), "Hello!")
    budget = at.session_state["simple_chat"].budget
    line = next(c for c in at.main.caption if c.value.startswith("Memory:"))
    assert line.value == f"Memory: {budget.sent_tokens:,} of {budget.token_limit:,} tokens"
    assert "nothing left out" in line.help and "context window" in line.help
    assert not any("Last request" in c.value for c in at.main.caption)


def test_words_for_users_on_home_help_feedback_and_the_knowledge_base_page(app_env):
    home = run(HOME)
    assert "any chat page" in " ".join(c.value for c in home.caption)
    assert "either chat page" not in " ".join(c.value for c in home.caption)
    help_page = run(HELP)
    text = " ".join(m.value for m in help_page.markdown)
    assert "Privacy: what stays on this machine" in text and "A better local model" in text
    assert "make test" not in text and "Redis Streams" not in text  # the README stays for developers
    images = help_page.get("image")
    assert len(images) >= 5
    app_env.write_text(json.dumps(SAVED), encoding="utf-8")
    memory = run(MEMORY)
    feedback = memory.get("download_button")
    assert any("Download rated answers (JSON Lines)" in (b.proto.help or "") for b in feedback)


def test_the_knowledge_base_pages_retrieval_settings_are_under_advanced(app_env):
    from utils.embeddings import build_embed_model
    from utils.knowledge_bases import KnowledgeBases

    KnowledgeBases(app_env.parent / "kbs", build_embed_model).create("plant")
    kb = run(KB)
    assert not any("Top 3 chunks" in c.value or "similarity ≥" in c.value for c in kb.main.caption)
    (advanced,) = [e for e in kb.sidebar.expander if e.label == "Advanced"]
    assert [s.label for s in advanced.slider] == ["Top k chunks", "Similarity threshold"]
