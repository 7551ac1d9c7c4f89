"""Web search on the memory page, in headless Chromium on the real local model: the "Search the web"
toggle, an answer from loopback pages holding a made-up fact with its "Sources" (the page used, the
passage, and a refused internal URL listed as skipped), shown again when the conversation is
loaded; then the search provider down: a sentence naming it, the question kept, and "Answer
without the web"."""

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import TIMEOUT_MS, wait_idle
from tests.test_browser_chat import bubble, open_memory_page, saved
from tests.web_servers import FACTS, PageServer, SearxngServer, results_for

pytestmark = pytest.mark.browser

VINTREL = FACTS[1]


@pytest.fixture
def web_app(app_env, monkeypatch):
    """Loopback pages (allowed) and an internal server (not allowed), a SearXNG-format search server,
    and the app's settings pointing at them; yields (pages, internal, searxng, conversations file)."""
    pages, internal, searxng = PageServer().start(), PageServer().start(), SearxngServer().start()
    searxng.results = [
        *results_for(pages, VINTREL[0], "/zorblax"),
        {"url": internal.url("/secret"), "title": "Internal admin page", "content": ""},
    ]
    monkeypatch.setenv("SEARXNG_URL", searxng.base_url)
    monkeypatch.setenv("PARLEY_FETCH_ALLOW", f"127.0.0.1:{pages.port}")
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    yield pages, internal, searxng, app_env
    for server in (pages, internal, searxng):
        server.stop()


def ask(page: Page, text: str, messages_before: int) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_test_id("stChatMessage")).to_have_count(messages_before + 2, timeout=TIMEOUT_MS)
    wait_idle(page)


def check_sources(reply, pages: PageServer) -> None:
    """The reply's "Sources" lists the Vintrel page first with its passage, and the internal page as skipped."""
    reply.get_by_text("Sources", exact=True).click()
    expect(reply.get_by_text("1. Vintrel river facts")).to_be_visible(timeout=TIMEOUT_MS)
    expect(reply.get_by_text(pages.url(VINTREL[0]), exact=True)).to_be_visible()
    expect(reply.get_by_text("exactly 412 kilometres long").first).to_be_visible()
    expect(reply.get_by_text("skipped: a loopback address (127.0.0.1)")).to_be_visible()


def test_search_the_web_answers_with_sources_shown_again_after_loading(web_app, streamlit_app, browser_page, shots):
    pages, internal, searxng, conversations = web_app
    page = browser_page
    open_memory_page(page, streamlit_app)
    page.get_by_test_id("stSidebar").get_by_text("Search the web").click()
    wait_idle(page)
    ask(page, VINTREL[3], 0)
    reply = bubble(page, 1)
    expect(reply.get_by_test_id("stCaptionContainer").first).to_contain_text("smollm2-135m-instruct")
    check_sources(reply, pages)
    memory = page.get_by_test_id("stCaptionContainer").filter(has_text="Memory:")
    expect(memory).to_contain_text("from 1 web page")
    page.screenshot(path=str(shots / "web_search.png"), full_page=True)
    assert searxng.queries == [VINTREL[3]] and internal.seen == []
    stored = saved(conversations)
    (name,) = stored
    question, answer = stored[name]
    assert question["web_search"] is True and question["content"] == VINTREL[3]
    assert answer["sources"][0]["url"] == pages.url(VINTREL[0])
    assert "412 kilometres" in answer["sources"][0]["text"]
    # a new chat, then the saved conversation again: its sources are drawn from the file
    page.get_by_test_id("stSidebar").get_by_role("button", name="New chat").click()
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_role("button", name=name[:10]).first.click()
    wait_idle(page)
    check_sources(bubble(page, 1), pages)


def test_a_failed_search_is_said_the_question_kept_and_answered_without_the_web(web_app, streamlit_app, browser_page):
    pages, _, searxng, conversations = web_app
    searxng.stop()  # the search provider is down: connection refused
    page = browser_page
    open_memory_page(page, streamlit_app)
    page.get_by_test_id("stSidebar").get_by_text("Search the web").click()
    wait_idle(page)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(VINTREL[3])
    box.press("Enter")
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("The web search failed: SearXNG at http://127.0.0.1", timeout=TIMEOUT_MS)
    expect(error).to_contain_text("could not be reached (connection refused)")
    expect(bubble(page, 0)).to_contain_text(VINTREL[3])  # the question is kept
    wait_idle(page)
    page.get_by_role("button", name="Answer without the web").click()
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2, timeout=TIMEOUT_MS)
    wait_idle(page)
    expect(error).to_have_count(0)
    expect(bubble(page, 1).get_by_test_id("stCaptionContainer").first).to_contain_text("smollm2-135m-instruct")
    (messages,) = saved(conversations).values()
    assert [m["role"] for m in messages] == ["user", "assistant"] and "sources" not in messages[1]
    assert pages.seen == []
