"""Assistants in headless Chromium, on the real local model behind a recording proxy: create one on
the Assistants page, choose it on the memory page, start a chat from its starter (the proxy sees its
instructions as the system prompt and its tool), reload, and the conversation is still its own."""

import pytest
from playwright.sync_api import Page, expect

from tests.fault_server import RecordingProxy
from tests.test_browser import TIMEOUT_MS, wait_idle
from tests.test_browser_chat import bubble, open_memory_page, saved
from utils.local_server import LOCAL_MODEL_ALIAS

pytestmark = pytest.mark.browser

INSTRUCTIONS = "You are Captain Clock. Always tell the user the time."


@pytest.fixture
def proxied_app(app_env, local_server, monkeypatch):
    """The app on the local model through a recording proxy (an OpenAI-compatible server)."""
    proxy = RecordingProxy(local_server.base_url).start()
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", proxy.base_url)
    monkeypatch.setenv("LLM_MODEL", LOCAL_MODEL_ALIAS)
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    yield proxy, app_env
    proxy.stop()


def create_assistant(page: Page, url: str) -> None:
    page.goto(f"{url}/Assistants", timeout=TIMEOUT_MS)
    wait_idle(page)
    page.get_by_role("button", name="Create assistant").first.click()
    wait_idle(page)
    form = page.get_by_test_id("stForm")
    form.get_by_role("textbox", name="Name").fill("Captain Clock")
    form.get_by_role("textbox", name="Emoji").fill("⏰")
    form.get_by_role("textbox", name="Description").fill("Knows the time.")
    form.get_by_role("textbox", name="Instructions").fill(INSTRUCTIONS)
    form.get_by_role("textbox", name="Conversation starters").fill("What time is it now?")
    tools = form.get_by_role("combobox", name="Tools")
    tools.click()
    tools.press_sequentially("Date and")
    page.get_by_role("option", name="Date and time").click()
    page.keyboard.press("Escape")
    form.get_by_role("button", name="Create assistant").click()
    wait_idle(page)
    expect(page.get_by_text("Captain Clock is created.")).to_be_visible(timeout=TIMEOUT_MS)


def choose_assistant(page: Page, label: str) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    box = sidebar.get_by_test_id("stSelectbox").filter(has_text="Assistant")
    for _ in range(3):  # a rerun can close the list as it opens
        box.click()
        option = page.get_by_role("option", name=label)
        if option.count():
            option.click()
            break
        page.wait_for_timeout(500)
    wait_idle(page)
    expect(box.get_by_role("combobox")).to_have_value(label)


def test_create_an_assistant_chat_from_its_starter_and_reload(proxied_app, streamlit_app, browser_page, shots):
    proxy, conversations = proxied_app
    page = browser_page
    create_assistant(page, streamlit_app)
    page.screenshot(path=str(shots / "assistants.png"), full_page=True)
    open_memory_page(page, streamlit_app)
    choose_assistant(page, "⏰ Captain Clock")
    before = len(proxy.bodies)
    page.get_by_role("button", name="What time is it now?").click()
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2, timeout=TIMEOUT_MS)
    wait_idle(page)
    body = proxy.bodies[before]
    assert body["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
    assert [t["function"]["name"] for t in body.get("tools", [])] == ["current_time"]
    (name,) = saved(conversations)
    assert saved(conversations)[name][0]["assistant"] == "captain-clock"
    page.reload()
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_role("button", name=name[:10]).first.click()
    wait_idle(page)
    expect(bubble(page, 0)).to_contain_text("What time is it now?")
    box = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Assistant")
    expect(box.get_by_role("combobox")).to_have_value("⏰ Captain Clock")
