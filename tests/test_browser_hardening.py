"""In Chromium, on a scripted provider: a reply, a user message, a source and a conversation's name
that each hold a Markdown image pointing at a loopback "collector" make the browser fetch nothing;
and a calculator call that would freeze the app is refused while the app's health endpoint keeps
answering."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.conftest import run_streamlit
from tests.scripted_server import Call, Say, ScriptedServer
from tests.test_browser import TIMEOUT_MS, open_conversation
from tests.test_browser_chat import bubble, open_memory_page
from tests.test_browser_tools import ask, choose_tool

pytestmark = pytest.mark.browser
FREEZE = "4000000**4000000*4000000**4000000 > 1"  # 140 s of held interpreter when computed


class Collector:
    """A loopback HTTP server that records every request it gets (it must get none)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                collector.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


class HealthWatch:
    """Asks the app's health endpoint every 100 ms and keeps the slowest answer, in seconds."""

    def __init__(self, url: str) -> None:
        self.url, self.slowest, self.failures = f"{url}/_stcore/health", 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=30):
                    pass
            except OSError:
                self.failures += 1
            self.slowest = max(self.slowest, time.monotonic() - started)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(40)


@pytest.fixture
def hostile(tmp_path):
    """A collector, a provider whose replies point images at it, and a saved conversation whose name,
    user message and source do too; yields (app URL, collector, conversation name)."""
    collector = Collector()
    provider = ScriptedServer(
        [
            Call("calculator", json.dumps({"expression": FREEZE})),
            Say(f"Done. ![loading]({collector.url}/leak?d=secret)"),
        ]
    ).start()
    name = f"![]({collector.url.replace('/', '&#47;')}/name)"
    source = {"file_name": f"![]({collector.url}/source)", "where": "", "score": 0.9, "text": "x"}
    conversations = tmp_path / "conversations.json"
    conversations.write_text(
        json.dumps(
            {
                name: [
                    {
                        "role": "user",
                        "content": f"Look ![me]({collector.url}/user)",
                        "timestamp": "2026-11-30T10:00:00Z",
                    },
                    {"role": "assistant", "content": "Seen.", "knowledge_base": "k", "sources": [source]},
                ]
            }
        ),
        encoding="utf-8",
    )
    env = {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "scripted"}
    url, process = run_streamlit({**env, "CONVERSATIONS_FILE": str(conversations), "KNOWLEDGE_BASE_DIR": str(tmp_path)})
    yield url, collector, name
    process.terminate()
    process.wait(10)
    provider.stop()
    collector.server.shutdown()


def test_no_image_is_fetched_and_a_freezing_calculation_is_refused_while_the_app_answers(hostile, browser_page):
    url, collector, name = hostile
    page = browser_page
    watch = HealthWatch(url)
    try:
        open_memory_page(page, url)
        choose_tool(page, "Calculator")
        ask(page, "Compare these two huge numbers.")
        reply = bubble(page, 1)
        expect(reply.get_by_text("Used Calculator (failed)")).to_be_visible(timeout=TIMEOUT_MS)
        expect(reply.get_by_role("link", name="🖼️ loading")).to_be_visible(timeout=TIMEOUT_MS)
        reply.get_by_text("Used Calculator (failed)").click()
        expect(reply.get_by_text("the result would have about").first).to_be_visible()

        shown = page.get_by_test_id("stSidebar").get_by_text(name[:10]).filter(visible=True)
        expect(shown).to_have_count(1)  # shown as text
        open_conversation(page, name)
        expect(bubble(page, 0).get_by_role("link", name="🖼️ me")).to_be_visible(timeout=TIMEOUT_MS)
        bubble(page, 1).get_by_text("Sources").click()
        expect(bubble(page, 1).get_by_text(f"![]({collector.url}/source)", exact=False)).to_be_visible()
        page.wait_for_timeout(1000)  # time for any fetch the page would make
    finally:
        watch.stop()
    assert collector.paths == []
    assert watch.failures == 0 and watch.slowest < 5.0, watch.slowest
