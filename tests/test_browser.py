"""Browser test: Playwright drives Debian's Chromium against `streamlit run Home.py` on the real local model."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from view.common import widget_key
from view.style import CONVERSATION_PREFIX

TIMEOUT_MS = 90_000

pytestmark = pytest.mark.browser


def wait_idle(page: Page) -> None:
    """Wait until the script run (and so any streaming, and the reruns it asks for) is over.

    Streamlit marks the app with ``data-test-script-state``; its status widget is not drawn with
    ``toolbarMode = "minimal"``, so it cannot tell. A click during a run that ``st.rerun()``
    started can be lost, so tests click only once the app is idle.
    """
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=TIMEOUT_MS)


def open_menu(page: Page, name: str, action: str) -> None:
    """Open the "⋯" menu of conversation ``name`` in the sidebar unless its ``action`` button already shows."""
    wait_idle(page)
    if not page.get_by_role("button", name=action, exact=True).is_visible():
        page.locator(f".st-key-{widget_key('conv-menu', name)} button").first.click()
    expect(page.get_by_role("button", name=action, exact=True)).to_be_visible()


def open_conversation(page: Page, name: str) -> None:
    """Open conversation ``name`` with one click on its item in the sidebar list."""
    wait_idle(page)
    page.locator(f".st-key-{widget_key(CONVERSATION_PREFIX, name)} button").first.click()
    wait_idle(page)


def send(page: Page, text: str, model: str = "smollm2-135m-instruct") -> None:
    """Type ``text`` into the chat input, send it and wait for the reply from ``model`` to finish."""
    before = page.get_by_test_id("stChatMessage").count()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_test_id("stChatMessage")).to_have_count(before + 2, timeout=TIMEOUT_MS)
    reply = page.get_by_test_id("stChatMessage").nth(before + 1)
    # The model's name is written under a reply once it is complete.
    expect(reply.get_by_test_id("stCaptionContainer").filter(has_text=model).first).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)


def make_knowledge_base(page: Page, name: str, files: list[Path]):
    """On the Knowledge Base page: create knowledge base ``name`` and index ``files`` through the
    sidebar, waiting for each step's confirmation; the sidebar's locator."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stPopoverButton").filter(has_text="New knowledge base").click()
    page.get_by_label("Name of the new knowledge base").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(sidebar.get_by_text(f"Created the knowledge base “{name}”.")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(files)
    sidebar.get_by_role("button", name=f"Index {len(files)} file(s)", exact=True).click()
    expect(sidebar.get_by_text(f"Indexed {len(files)} file(s)")).to_be_visible(timeout=TIMEOUT_MS)
    return sidebar


@pytest.fixture
def app_env(app_env, monkeypatch):
    """Longer replies than the other tests, so the screenshots in docs/ show a real exchange;
    knowledge bases in the test's own folder."""
    monkeypatch.setenv("LLM_MAX_TOKENS", "120")
    monkeypatch.setenv("KNOWLEDGE_BASE_DIR", str(app_env.parent / "kbs"))
    return app_env


def test_memory_chat_save_reload_load_delete_then_simple_chat(app_env, streamlit_app, browser_page, shots):
    page = browser_page
    page.goto(streamlit_app, timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Parley")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("smollm2-135m-instruct")).to_be_visible(timeout=TIMEOUT_MS)
    page.screenshot(path=shots / "home.png")

    page.get_by_test_id("stSidebarNav").get_by_text("Chatbot With Memory").click()
    expect(page.get_by_role("heading", name="Chatbot With Memory")).to_be_visible(timeout=TIMEOUT_MS)
    send(page, "Hello! My name is Ada. What is the capital of France?")
    reply = page.get_by_test_id("stChatMessage").nth(1)
    expect(reply).not_to_have_text(re.compile(r"^\s*$"))
    assert "Ada" in page.get_by_test_id("stChatMessage").nth(0).inner_text()

    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("button", name="Save", exact=True).click()
    sidebar.get_by_label("Enter a name to save the conversation:").fill("Meeting Ada")
    sidebar.get_by_role("button", name="Confirm Save", exact=True).click()
    expect(sidebar.get_by_text("Saved as “Meeting Ada”")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    page.screenshot(path=shots / "chatbot_with_memory.png")
    assert "Meeting Ada" in json.loads(app_env.read_text(encoding="utf-8"))

    page.reload()  # the conversation's own URL opens it again
    expect(page.get_by_role("heading", name="Chatbot With Memory")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    assert "conversation=Meeting+Ada" in page.url
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stChatMessage").nth(0)).to_contain_text("My name is Ada")
    wait_idle(page)

    open_menu(page, "Meeting Ada", "Export JSON")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSON", exact=True).click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["Meeting Ada"][0]["content"].startswith("Hello! My name is Ada.")
    expect(page.get_by_role("button", name="Export JSON", exact=True)).to_be_hidden(timeout=TIMEOUT_MS)  # closed

    upload = app_env.parent / "to_import.json"
    upload.write_text(json.dumps({"Imported chat": [{"role": "user", "content": "from a file"}]}), encoding="utf-8")
    sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(upload)
    sidebar.get_by_role("button", name="Import 1 conversation(s)", exact=True).click()
    expect(sidebar.get_by_role("button", name="Imported chat", exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
    assert "Imported chat" in json.loads(app_env.read_text(encoding="utf-8"))
    wait_idle(page)

    open_menu(page, "Meeting Ada", "Delete")
    page.get_by_role("button", name="Delete", exact=True).click()
    wait_idle(page)
    page.get_by_role("dialog").get_by_role("button", name="Yes, delete", exact=True).click()
    expect(sidebar.get_by_text("Deleted “Meeting Ada”")).to_be_visible(timeout=TIMEOUT_MS)
    expect(sidebar.get_by_role("button", name="Meeting Ada", exact=True)).to_have_count(0)
    assert "Meeting Ada" not in json.loads(app_env.read_text(encoding="utf-8"))

    page.get_by_test_id("stSidebarNav").get_by_text("Simple Chat").click()
    expect(page.get_by_role("heading", name="Simple Chat")).to_be_visible(timeout=TIMEOUT_MS)
    send(page, "Name three colours.")
    expect(page.get_by_test_id("stChatMessage").nth(1)).not_to_have_text(re.compile(r"^\s*$"))
    page.screenshot(path=shots / "simple_chat.png")

    sidebar.get_by_text("Model settings").click()
    expect(sidebar.get_by_text("Temperature")).to_be_visible()
    expect(sidebar.get_by_text("Changes apply from your next message")).to_be_visible()
    page.wait_for_timeout(1000)  # let the expander finish opening
    page.screenshot(path=shots / "model_settings.png")


def test_knowledge_base_create_upload_ask_sources_delete(
    app_env, monkeypatch, tmp_path, streamlit_app, browser_page, shots
):
    from tests.kb_files import FACTS, all_files

    page = browser_page
    files = dict(all_files())
    for name in ("valves.txt", "crew.csv"):
        (tmp_path / name).write_bytes(files[name])
    page.goto(f"{streamlit_app}/Knowledge_Base", timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Knowledge Base", exact=True, level=1)).to_be_visible(timeout=TIMEOUT_MS)
    sidebar = make_knowledge_base(page, "Plant docs", [tmp_path / "valves.txt", tmp_path / "crew.csv"])
    wait_idle(page)
    send(page, FACTS["valves.txt"][0])
    reply = page.get_by_test_id("stChatMessage").nth(1)
    reply.get_by_text("Sources").click()
    expect(reply.get_by_text("valves.txt").first).to_be_visible()
    page.wait_for_timeout(500)
    page.screenshot(path=shots / "knowledge_base.png")
    wait_idle(page)
    sidebar.get_by_role("button", name="Delete knowledge base", exact=True).click()
    wait_idle(page)
    sidebar.get_by_role("button", name="Yes, delete it", exact=True).click()
    expect(sidebar.get_by_text("Deleted the knowledge base “Plant docs”.")).to_be_visible(timeout=TIMEOUT_MS)
