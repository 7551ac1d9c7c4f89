"""Web search: providers, the SSRF guard, bad pages, and answers from the web on the real local model.

The web is played by loopback servers (tests/web_servers.py): a SearXNG-format search server and
page servers holding made-up facts. Nothing here reaches the internet.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.chat import Chat
from controller.engines import AgentEngine
from controller.errors import ChatError
from controller.tools import ToolBox, tool_label
from controller.web_search import WebSearch, citations
from model.json_store import JsonFileStore
from model.message import Message, Source
from tests.scripted_server import Call, Say, ScriptedServer
from tests.web_servers import FACTS, PageServer, SearxngServer, results_for
from utils.embeddings import build_embed_model
from utils.local_server import free_port
from utils.providers import LLMConfig
from utils.safe_fetch import FetchPolicy, FetchRefused, blocked_reason, fetch
from utils.web_pages import read_pages
from utils.web_search import (
    BraveSearch,
    DuckDuckGoSearch,
    SearchResult,
    SearxngSearch,
    TavilySearch,
    WebSearchError,
    search_provider,
)

VINTREL = FACTS[1]


@pytest.fixture(scope="module")
def embed_model():
    return build_embed_model()


@pytest.fixture
def web():
    """A page server (allowed by host:port), a second server that is not allowed (the "internal"
    target), and a SearXNG-format server; yields (pages, target, searxng, WebSearch factory)."""
    pages, target, searxng = PageServer().start(), PageServer().start(), SearxngServer().start()
    policy = FetchPolicy.from_text(f"127.0.0.1:{pages.port}", searxng.base_url)
    yield pages, target, searxng, policy
    for server in (pages, target, searxng):
        server.stop()


def closed_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


# ----- the SSRF guard ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.5.5.5",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address):
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"])
def test_public_addresses_are_not_refused(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_hosts_pairs_networks_and_urls():
    policy = FetchPolicy.from_text("intranet.example, 127.0.0.1:8080, 10.1.0.0/16", "http://search.local:8888")
    loopback, ten = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3")
    assert policy.allows("intranet.example", 443, ten)
    assert policy.allows("127.0.0.1", 8080, loopback) and not policy.allows("127.0.0.1", 8081, loopback)
    assert policy.allows("anything", 80, ten) and not policy.allows("anything", 80, ipaddress.ip_address("10.2.0.1"))
    assert policy.allows("search.local", 8888, loopback) and not policy.allows("search.local", 80, loopback)
    with pytest.raises(ValueError):
        FetchPolicy.from_text("not a network/99")


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:80/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 written as one number
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_urls_that_are_refused_say_why(url, reason):
    with pytest.raises(FetchRefused, match=reason):
        fetch(url, FetchPolicy(), timeout=5)


def test_none_of_the_ssrf_cases_reaches_its_target_and_each_is_listed_as_skipped(web, embed_model):
    pages, target, searxng, policy = web
    searxng.results = [
        {"url": target.url("/secret"), "title": "Loopback port not allowed", "content": ""},
        {"url": "http://169.254.169.254/latest/meta-data/", "title": "Cloud metadata", "content": ""},
        {"url": pages.url(f"/redirect?to={target.url('/secret')}"), "title": "Redirect inside", "content": ""},
        {"url": target.url("/secret", host="localhost"), "title": "Name for 127.0.0.1", "content": ""},
        *results_for(pages, VINTREL[0]),
    ]
    context = WebSearch(SearxngSearch(searxng.base_url), policy, embed_model).context(VINTREL[3], 800)
    assert target.seen == [], "the internal server was reached"
    skipped = {s.file_name: s.skipped for s in context.sources if s.skipped}
    assert set(skipped) == {"Loopback port not allowed", "Cloud metadata", "Redirect inside", "Name for 127.0.0.1"}
    assert "loopback" in skipped["Loopback port not allowed"]
    assert "link-local" in skipped["Cloud metadata"] and "169.254.169.254" in skipped["Cloud metadata"]
    assert "loopback" in skipped["Redirect inside"] and "/redirect" in pages.seen
    assert skipped["Name for 127.0.0.1"].startswith("localhost is a loopback address")
    assert [s.url for s in context.used] == [pages.url(VINTREL[0])]
    assert "412 kilometres" in context.used[0].text and "[1] Vintrel river facts" in context.prompt


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked, then to another; the
    fetch must still go to the checked one (the other server sees nothing)."""
    checked = PageServer(host="127.0.0.2").start()
    try:
        other = PageServer(host="127.0.0.1", port=checked.port).start()
    except OSError:
        checked.stop()
        pytest.skip("the port is taken on 127.0.0.1")
    answers = iter(["127.0.0.2"])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = next(answers, "127.0.0.1")  # the first answer is checked; later ones rebind
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        page = fetch(f"http://rebind.test:{checked.port}/zorblax", FetchPolicy.from_text("127.0.0.2"))
    finally:
        checked.stop()
        other.stop()
    assert page.status == 200 and b"Quendale" in page.body
    assert checked.seen == ["/zorblax"] and other.seen == []


# ----- bad pages ---------------------------------------------------------------------------------
def test_a_huge_page_is_cut_at_the_limit():
    pages = PageServer().start()
    try:
        started = time.monotonic()
        page = fetch(pages.url("/huge"), FetchPolicy.from_text(f"127.0.0.1:{pages.port}"))
    finally:
        pages.stop()
    assert page.truncated and len(page.body) == 2 * 2**20
    assert time.monotonic() - started < 30  # 2 MB read, not 50


def test_bad_pages_are_handled_and_named_and_the_good_one_is_used(web):
    pages, _, _, policy = web
    results = [
        SearchResult(title, pages.url(path))
        for path, title in (("/slow", "Slow"), ("/huge", "Huge"), ("/binary", "Binary"))
    ]
    results += [SearchResult("Empty", pages.url("/empty")), SearchResult(VINTREL[1], pages.url(VINTREL[0]))]
    started = time.monotonic()
    read = {p.result.title: p for p in read_pages(results, policy)}
    assert time.monotonic() - started < 14  # the slow page is given up after 10 s
    assert read["Slow"].skipped.startswith("it took longer than")
    assert read["Huge"].text.startswith("Huge page") and read["Huge"].note == "only its first 2 MB were read"
    assert read["Binary"].skipped == "not a web page, plain text or PDF (application/octet-stream)"
    assert read["Empty"].skipped == "no text was found on it"
    assert "412 kilometres" in read[VINTREL[1]].text and not read[VINTREL[1]].skipped


def test_a_pdf_page_is_read_and_a_plain_text_page_too(web):
    from tests.kb_files import pdf

    pages, _, _, policy = web
    pages.routes["/report.pdf"] = type(pages.routes["/secret"])(headers={"Content-Type": "application/pdf"}, body=pdf())
    pages.routes["/notes.txt"] = type(pages.routes["/secret"])(
        headers={"Content-Type": "text/plain; charset=utf-8"}, body=b"Plain notes: the kettle whistles."
    )
    read = read_pages(
        [SearchResult("PDF", pages.url("/report.pdf")), SearchResult("Text", pages.url("/notes.txt"))], policy
    )
    assert read[0].text.strip() and not read[0].skipped
    assert read[1].text == "Plain notes: the kettle whistles."


# ----- providers -----------------------------------------------------------------------------------
class JsonServer:
    """A loopback server answering every GET or POST with ``answer`` as JSON; records what it got."""

    def __init__(self, answer: dict) -> None:
        self.answer, self.requests = answer, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body: bytes = b"") -> None:
                server.requests.append((self.command, self.path, dict(self.headers), body))
                data = json.dumps(server.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._reply()

            def do_POST(self):
                self._reply(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_brave_and_tavily_answers_become_results_and_keys_go_in_their_headers():
    brave = JsonServer({"web": {"results": [{"title": "B", "url": "https://b.example/", "description": "bee"}]}})
    tavily = JsonServer({"results": [{"title": "T", "url": "https://t.example/", "content": "tee"}]})
    try:
        assert BraveSearch("brave-key", f"{brave.url}/res/v1/web/search").search("q", 3) == [
            SearchResult("B", "https://b.example/", "bee")
        ]
        assert TavilySearch("tvly-key", tavily.url).search("q", 3) == [SearchResult("T", "https://t.example/", "tee")]
    finally:
        brave.stop()
        tavily.stop()
    method, path, headers, _ = brave.requests[0]
    assert (
        method == "GET" and path.startswith("/res/v1/web/search?q=q") and headers["X-Subscription-Token"] == "brave-key"
    )
    method, path, headers, body = tavily.requests[0]
    assert (method, path) == ("POST", "/search") and json.loads(body)["query"] == "q"
    assert "tvly-key" in headers.get("Authorization", "") + json.dumps(json.loads(body))


def test_auto_picks_searxng_then_a_key_then_duckduckgo():
    assert isinstance(search_provider("auto", "http://127.0.0.1:8888", "t", "b"), SearxngSearch)
    assert isinstance(search_provider("auto", None, "t", "b"), TavilySearch)
    assert isinstance(search_provider("auto", None, None, "b"), BraveSearch)
    assert isinstance(search_provider("auto"), DuckDuckGoSearch)
    with pytest.raises(WebSearchError, match="SEARXNG_URL is not set"):
        search_provider("searxng")


@pytest.mark.parametrize(
    "provider, name",
    [
        (lambda url: SearxngSearch(url), "SearXNG at http://127.0.0.1"),
        (lambda url: BraveSearch("k", url), "Brave Search at http://127.0.0.1"),
        (lambda url: TavilySearch("k", url), "Tavily failed"),
        (lambda url: DuckDuckGoSearch(proxy=url), "DuckDuckGo"),
    ],
)
def test_an_unreachable_provider_is_named_in_a_sentence(provider, name):
    with pytest.raises(WebSearchError) as failure:
        provider(closed_url()).search("anything", 3)
    assert name in str(failure.value) and "Traceback" not in str(failure.value)


# ----- answers from the web ------------------------------------------------------------------------
def test_the_local_model_answers_from_the_web_with_the_page_and_passage_kept(web, embed_model, local_config, tmp_path):
    pages, _, searxng, policy = web
    searxng.results = results_for(pages, "/zorblax", VINTREL[0], "/mossbeak")
    store = JsonFileStore(tmp_path / "conversations.json")
    search = WebSearch(SearxngSearch(searxng.base_url), policy, embed_model)
    chat = Chat(AgentEngine.from_defaults(local_config, web=search), store, auto_title=True)
    chat.set_web_search(True)
    reply_text = "".join(chat.send(VINTREL[3]))
    reply = chat.messages[-1]
    assert searxng.queries == [VINTREL[3]]
    assert reply_text.strip() and reply.sources[0].url == pages.url(VINTREL[0])
    assert "412 kilometres" in reply.sources[0].text
    assert chat.budget is not None and chat.budget.web_pages >= 1 and chat.budget.web_tokens > 0
    assert chat.messages[-2].web_search and chat.messages[-2].content == VINTREL[3]  # the question as typed
    stored = store.get(chat.name)
    assert stored[-1].sources == reply.sources and stored[-2].web_search  # saved, and shown again on load


def test_when_the_search_fails_the_question_is_kept_and_can_be_answered_without_the_web(
    embed_model, local_config, tmp_path
):
    search = WebSearch(SearxngSearch(closed_url()), FetchPolicy(), embed_model)
    chat = Chat(
        AgentEngine.from_defaults(local_config, web=search), JsonFileStore(tmp_path / "c.json"), auto_title=True
    )
    chat.set_web_search(True)
    with pytest.raises(ChatError) as failure:
        "".join(chat.send("Where is the Zorblax Festival held?"))
    assert failure.value.web_failed and "SearXNG at http://127.0.0.1" in str(failure.value)
    assert "could not be reached (connection refused)" in str(failure.value)
    assert chat.pending_user_text() == "Where is the Zorblax Festival held?"
    answer = "".join(chat.retry(without_web=True))
    assert answer.strip() and chat.messages[-1].sources == () and chat.messages[-1].is_reply


def test_the_web_search_tool_gives_the_agent_numbered_passages_and_the_call_keeps_the_pages(web, embed_model, tmp_path):
    pages, _, searxng, policy = web
    searxng.results = results_for(pages, VINTREL[0])
    search = WebSearch(SearxngSearch(searxng.base_url), policy, embed_model)
    toolbox = ToolBox(web=search)
    assert "web_search" in toolbox.available() and tool_label("web_search") == "Web search"
    assert "web_search" not in ToolBox().available()
    server = ScriptedServer([Call("search_web", '{"query": "Vintrel river length"}'), Say("It is 412 km long [1].")])
    server.start()
    try:
        config = LLMConfig(provider="openai_like", model="scripted", base_url=server.base_url, max_tokens=60)
        chat = Chat(AgentEngine.from_defaults(config, toolbox, search), JsonFileStore(tmp_path / "c.json"))
        chat.set_tools(["web_search"])
        reply = "".join(chat.send("How long is the Vintrel river?"))
    finally:
        server.stop()
    call = chat.messages[-1].tool_calls[0]
    assert reply == "It is 412 km long [1]." and not call.error
    assert call.sources[0].url == pages.url(VINTREL[0]) and "412 kilometres" in call.result
    assert searxng.queries == ["Vintrel river length"]
    # the model was given the numbered passages as the call's result
    tool_messages = [m for m in server.bodies[1]["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"].startswith("Web search results:\n\n[1] Vintrel river facts")


def test_citations_and_stored_sources_round_trip():
    used = Source("Page one", url="https://one.example/", text="passage")
    skipped = Source("Bad", url="http://10.0.0.1/", skipped="a private address (10.0.0.1)")
    assert citations("Yes [1], and [2] or [3].", [used, skipped]) == [(4, 7, used)]
    message = Message.from_dict(Message(Message.user("q").role, "a", sources=(used, skipped)).to_dict())
    assert message.sources == (used, skipped)
    assert Message.from_dict({"role": "user", "content": "q", "web_search": True}).web_search
