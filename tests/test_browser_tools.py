"""The memory page's agent with tools, in a real browser on the real local model (its tool calls
come from llama-cpp-python's chatml-function-calling format): a calculator call shown and saved with
the reply, a knowledge base as a tool answering a made-up fact with its source, and JSON mode shown
as formatted JSON."""

import json

import pytest
from playwright.sync_api import Page, expect

from tests.kb_files import txt
from tests.test_browser import TIMEOUT_MS, wait_idle
from tests.test_browser_chat import bubble, open_memory_page, saved
from utils.embeddings import build_embed_model
from utils.knowledge_bases import KnowledgeBases

pytestmark = pytest.mark.browser


@pytest.fixture
def greedy(app_env, monkeypatch):
    """Greedy replies, so the small model's choices are the same every run."""
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    return app_env


def choose_tool(page: Page, label: str) -> None:
    """Pick ``label`` in the sidebar's "Tools": typed, as the list may open below the fold."""
    tools = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Tools")
    tools.scroll_into_view_if_needed()
    tools.click()
    tools.press_sequentially(label[:6])
    page.get_by_role("option", name=label).click()
    page.keyboard.press("Escape")
    wait_idle(page)


def ask(page: Page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2, timeout=TIMEOUT_MS)
    wait_idle(page)


def open_call(page: Page, url: str, tool: str, question: str, call: str):
    """Choose ``tool`` on a new memory page, ask ``question``, open the reply's "Used ``call``"
    expander and return the reply's bubble."""
    open_memory_page(page, url)
    choose_tool(page, tool)
    ask(page, question)
    reply = bubble(page, 1)
    expect(reply.get_by_text(f"Used {call}", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    reply.get_by_text(f"Used {call}", exact=True).click()
    return reply


def test_the_calculator_call_is_shown_and_saved_with_the_reply(greedy, streamlit_app, browser_page, shots):
    page = browser_page
    reply = open_call(page, streamlit_app, "Calculator", "Use the calculator to compute 1234*5678.", "Calculator")
    expect(reply.get_by_text("7006652").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(reply.get_by_text('"expression"').last).to_be_visible()  # in the opened, successful call
    page.wait_for_timeout(600)  # the expander opens with an animation
    page.screenshot(path=str(shots / "tools.png"), full_page=True)

    (conversation,) = saved(greedy).values()
    user, answer = conversation
    assert user["tools"] == ["calculator"]
    *retried, call = answer["tool_calls"]  # the small model may first write a bad call, then retry
    assert all(c["error"] for c in retried) and len(retried) < 2
    assert call["name"] == "calculator" and call["result"] == "7006652" and call["error"] is False
    assert json.loads(call["arguments"])["expression"].replace(" ", "") == "1234*5678"


def test_json_mode_shows_the_reply_as_formatted_json(greedy, streamlit_app, browser_page):
    page = browser_page
    open_memory_page(page, streamlit_app)
    page.get_by_test_id("stSidebar").get_by_text("JSON mode").click()
    wait_idle(page)
    ask(page, "Give me a JSON object with the keys name and age.")
    expect(bubble(page, 1).get_by_test_id("stJson")).to_be_visible(timeout=TIMEOUT_MS)
    (conversation,) = saved(greedy).values()
    answer = conversation[1]
    assert answer["json_mode"] is True
    assert isinstance(json.loads(answer["content"]), dict)


@pytest.fixture
def plant_notes(greedy):
    """A knowledge base "plant notes" holding valves.txt (a made-up fact), made before the app starts."""
    kbs = KnowledgeBases(greedy.parent / "kbs", build_embed_model)
    kbs.create("plant notes").add_files([("valves.txt", txt())])
    return greedy


def test_a_knowledge_base_tool_answers_with_its_source(plant_notes, streamlit_app, browser_page):
    question = "Search my notes: when does the Zorblax valve open?"
    reply = open_call(
        browser_page, streamlit_app, "Knowledge base: plant notes", question, "Knowledge base: plant notes"
    )
    expect(reply.get_by_text("valves.txt").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(reply.get_by_text("42 kPa").first).to_be_visible()
