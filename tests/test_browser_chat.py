"""The chat features in a real browser (Playwright, Debian's Chromium) on the real local model:
stop, regenerate with versions, copy, edit and resend, thumbs with a comment, a chat saved from its
first message surviving a refresh, and files in the chat box."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.fault_server import RecordingProxy
from tests.kb_files import FACTS, all_files
from tests.servers import disconnected_since
from tests.test_browser import TIMEOUT_MS, send, wait_idle
from utils.local_server import LOCAL_MODEL_ALIAS
from view.common import widget_key
from view.style import CONVERSATION_PREFIX

pytestmark = pytest.mark.browser

LONG = "Write a very long story about a dragon, in twenty chapters of 500 words each."


def saved(app_env) -> dict:
    return json.loads(app_env.read_text(encoding="utf-8"))


def open_memory_page(page: Page, url: str) -> None:
    page.goto(f"{url}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Chatbot With Memory")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)


def bubble(page: Page, index: int):
    return page.get_by_test_id("stChatMessage").nth(index)


@pytest.fixture
def long_replies(app_env, monkeypatch):
    """Replies of up to 2,000 tokens (about 15 s on 2 cores), so there is time to press Stop; greedy,
    so that LONG is answered at full length every time (at 0.7 it sometimes ends after ~350 tokens)."""
    monkeypatch.setenv("LLM_MAX_TOKENS", "2000")
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    return app_env


def test_stop_keeps_the_text_marked_stopped_and_a_refresh_keeps_the_chat(
    long_replies, local_server, streamlit_app, browser_page
):
    page = browser_page
    open_memory_page(page, streamlit_app)
    before = sum("Disconnected from client" in line for line in local_server.log_lines())
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(LONG)
    box.press("Enter")
    expect(bubble(page, 1)).to_contain_text(re.compile(r"\w+ \w+ \w+"), timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Stop", exact=True).click()
    # The finished page at once (a generous deadline; bench/ measures it): the note, the actions,
    # the memory line, and the chat listed in the sidebar.
    expect(bubble(page, 1).get_by_text("Stopped: this reply")).to_be_visible(timeout=5_000)
    expect(bubble(page, 1).get_by_role("button", name="Regenerate")).to_be_visible(timeout=5_000)
    expect(bubble(page, 1).get_by_role("button", name="Copy")).to_be_visible(timeout=5_000)
    memory_line = page.get_by_test_id("stCaptionContainer").filter(
        has_text=re.compile(r"Memory: [\d,]+ of [\d,]+ tokens")
    )
    expect(memory_line).to_be_visible(timeout=5_000)
    expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0, timeout=5_000)
    wait_idle(page)
    conversations = saved(long_replies)
    (title,) = conversations  # saved from its first message, under its first words
    assert title.startswith("Write a very long story")
    reply = conversations[title][1]
    assert reply["stopped"] is True and reply["incomplete"] is True and reply["content"].strip()
    if local_server.process is not None:  # the server's own log: it stopped generating
        assert disconnected_since(local_server, before)

    listed = page.locator(f".st-key-{widget_key(CONVERSATION_PREFIX, title)} button").first
    expect(listed).to_have_attribute("kind", "secondary")  # listed, and highlighted as the open one
    page.reload()  # the conversation's URL opens it again
    expect(page.get_by_role("heading", name="Chatbot With Memory")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    expect(bubble(page, 1).get_by_text("Stopped: this reply")).to_be_visible(timeout=TIMEOUT_MS)
    assert reply["content"][:30] in bubble(page, 1).inner_text()


def test_regenerate_gives_version_two_and_version_one_can_be_chosen_again_and_copy(
    app_env, streamlit_app, browser_page, shots
):
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=streamlit_app)
    open_memory_page(page, streamlit_app)
    send(page, "Name a colour.")
    first = bubble(page, 1).get_by_test_id("stMarkdown").first.inner_text()
    bubble(page, 1).get_by_role("button", name="Regenerate").click()
    expect(bubble(page, 1).get_by_text("2 / 2")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    page.mouse.move(1, 1)  # no tooltip over the picture
    page.screenshot(path=shots / "chat_features.png")
    (messages,) = saved(app_env).values()
    assert messages[1]["version_index"] == 1 and messages[1]["versions"][0][0]["content"] == first.strip()

    bubble(page, 1).get_by_role("button", name="Previous version").click()
    expect(bubble(page, 1).get_by_text("1 / 2")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    assert bubble(page, 1).get_by_test_id("stMarkdown").first.inner_text() == first
    (messages,) = saved(app_env).values()
    assert messages[1]["content"] == first.strip() and messages[1]["version_index"] == 0
    assert len(messages[1]["versions"]) == 1  # both versions kept

    bubble(page, 0).get_by_role("button", name="Copy").click()
    expect(bubble(page, 0).get_by_text("Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "Name a colour."


def test_edit_and_resend_makes_a_branch_and_the_memory_sends_the_edited_text(
    app_env, local_server, monkeypatch, browser_page, request
):
    proxy = RecordingProxy(local_server.base_url).start()
    request.addfinalizer(proxy.stop)
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", proxy.base_url)
    monkeypatch.setenv("LLM_MODEL", LOCAL_MODEL_ALIAS)
    url = request.getfixturevalue("streamlit_app")
    page = browser_page
    open_memory_page(page, url)
    send(page, "My name is Ada.")
    bubble(page, 0).get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Edit your message")
    expect(editor).to_be_visible(timeout=TIMEOUT_MS)
    editor.fill("My name is Grace.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(bubble(page, 0).get_by_text("2 / 2")).to_be_visible(timeout=TIMEOUT_MS)
    expect(bubble(page, 1).get_by_text(LOCAL_MODEL_ALIAS)).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    send(page, "What is my name?")
    sent = json.dumps(proxy.bodies[-1]["messages"])
    assert "Grace" in sent and "Ada" not in sent
    (messages,) = saved(app_env).values()
    assert messages[0]["content"] == "My name is Grace." and messages[0]["version_index"] == 1
    assert messages[0]["versions"][0][0]["content"] == "My name is Ada."


def test_thumbs_down_with_a_comment_is_saved(app_env, streamlit_app, browser_page):
    page = browser_page
    open_memory_page(page, streamlit_app)
    send(page, "Hello!")
    bubble(page, 1).get_by_role("radio", name="Thumbs down").click()
    wait_idle(page)
    (messages,) = saved(app_env).values()
    assert messages[1]["feedback"]["rating"] == -1
    bubble(page, 1).get_by_role("button", name="Comment").click()
    page.get_by_label("Comment on this answer (optional)").fill("Too vague.")
    page.get_by_role("button", name="Save comment").click()
    wait_idle(page)
    (messages,) = saved(app_env).values()
    assert messages[1]["feedback"] == {**messages[1]["feedback"], "rating": -1, "comment": "Too vague."}
    expect(bubble(page, 1).get_by_text("💬 Too vague.")).to_be_visible(timeout=TIMEOUT_MS)


def attach(page: Page, name: str, data: bytes, mime: str = "application/octet-stream") -> None:
    page.get_by_test_id("stChatInput").locator("input[type=file]").set_input_files(
        {"name": name, "mimeType": mime, "buffer": data}
    )


def test_a_file_in_the_chat_box_goes_with_the_message_and_a_bad_one_is_named(app_env, streamlit_app, browser_page):
    page = browser_page
    open_memory_page(page, streamlit_app)
    name = "valves.txt"
    attach(page, name, dict(all_files())[name], "text/plain")
    send(page, "What does the file say about the valve?")
    expect(bubble(page, 0).get_by_text(f"📎 {name} · all")).to_be_visible(timeout=TIMEOUT_MS)
    (messages,) = saved(app_env).values()
    assert messages[0]["attachments"][0]["name"] == name
    assert FACTS[name][1] in messages[0]["attachments"][0]["text"]

    attach(page, "notes.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "text/plain")
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Please read my notes")
    box.press("Enter")
    wait_idle(page)
    error = page.get_by_test_id("stAlertContentError").last
    expect(error).to_contain_text("notes.txt", timeout=TIMEOUT_MS)
    expect(error).to_contain_text("not UTF-8")
    expect(page.get_by_test_id("stCode").last).to_contain_text("Please read my notes")  # the typed text is kept


def test_home_links_every_page_and_the_notice_links_open_readme_sections(app_env, streamlit_app, browser_page):
    page = browser_page
    page.goto(streamlit_app, timeout=TIMEOUT_MS)
    main = page.get_by_test_id("stMain")
    for label in ("Simple Chat", "Chatbot With Memory", "Knowledge Base", "Help"):
        expect(main.get_by_role("link", name=label)).to_be_visible(timeout=TIMEOUT_MS)
    open_memory_page(page, streamlit_app)
    notice = page.get_by_test_id("stAlertContentInfo").filter(has_text="135-million-parameter")
    links = notice.get_by_role("link")
    expect(links).to_have_count(3)
    anchors = [links.nth(i).get_attribute("href").split("#", 1)[1] for i in range(3)]
    with page.expect_popup() as opened:  # Streamlit opens Markdown links in a new tab
        links.first.click()
    help_page = opened.value
    expect(help_page.get_by_role("heading", name="A better local model")).to_be_visible(timeout=TIMEOUT_MS)
    for anchor in anchors:  # each link's section is a heading on the Help page
        expect(help_page.locator(f"[id='{anchor}']")).to_have_count(1)
