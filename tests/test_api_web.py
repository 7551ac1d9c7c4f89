"""Web search over the chat server (a real uvicorn process on the real local model): OpenAI's
``web_search_options`` with the openai SDK (``url_citation`` annotations, streamed and not), the
websocket's and the REST turn's ``web_search`` flag, and a queued turn answered by a worker.

The web is played by loopback servers (tests/web_servers.py)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.test_api import KEY, TIMEOUT, start_api, stop_api, token_for, ws_answer
from tests.test_queue import Worker
from tests.web_servers import FACTS, PageServer, SearxngServer, results_for
from utils.local_server import LOCAL_MODEL_ALIAS, free_port

VINTREL = FACTS[1]


@pytest.fixture(scope="module")
def web():
    """Loopback pages (allowed) and a SearXNG-format search server answering with them."""
    pages, searxng = PageServer().start(), SearxngServer().start()
    searxng.results = results_for(pages, VINTREL[0], "/zorblax")
    yield pages, searxng
    pages.stop()
    searxng.stop()


def web_env(pages: PageServer, searxng_url: str) -> dict[str, str]:
    return {"SEARXNG_URL": searxng_url, "PARLEY_FETCH_ALLOW": f"127.0.0.1:{pages.port}", "LLM_TEMPERATURE": "0"}


@pytest.fixture(scope="module")
def api(web, local_server, tmp_path_factory):
    pages, searxng = web
    server = start_api(tmp_path_factory.mktemp("api-web"), local_server, **web_env(pages, searxng.base_url))
    yield server
    stop_api(server)


@pytest.fixture
def sdk(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT)


def test_v1_web_search_options_answer_with_url_citations(sdk, web):
    pages, _ = web
    answer = sdk.chat.completions.create(
        model=LOCAL_MODEL_ALIAS,
        messages=[{"role": "user", "content": VINTREL[3]}],
        web_search_options={"search_context_size": "low"},
    )
    message = answer.choices[0].message
    assert message.content and message.annotations
    first = message.annotations[0]
    assert first.type == "url_citation" and first.url_citation.url == pages.url(VINTREL[0])
    assert first.url_citation.title == VINTREL[1]
    assert 0 <= first.url_citation.start_index <= first.url_citation.end_index <= len(message.content)
    sources = answer.model_extra["parley_sources"]
    assert "412 kilometres" in sources[0]["text"] and sources[0]["url"] == pages.url(VINTREL[0])


def test_v1_streamed_web_search_puts_the_citations_on_the_last_piece(sdk, web):
    pages, _ = web
    stream = sdk.chat.completions.create(
        model=LOCAL_MODEL_ALIAS, messages=[{"role": "user", "content": VINTREL[3]}], web_search_options={}, stream=True
    )
    chunks = list(stream)
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    annotations = last.choices[0].delta.model_extra["annotations"]
    assert annotations[0]["url_citation"]["url"] == pages.url(VINTREL[0])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and all(a["url_citation"]["end_index"] <= len(text) for a in annotations)


def test_v1_web_search_options_are_refused_after_a_tool_result_and_with_an_unknown_size(api):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with api.client() as client:
        last = client.post(
            "/v1/chat/completions",
            json={
                "model": LOCAL_MODEL_ALIAS,
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                ],
                "web_search_options": {},
            },
        )
        unknown = client.post(
            "/v1/chat/completions",
            json={
                "model": LOCAL_MODEL_ALIAS,
                "messages": [{"role": "user", "content": "q"}],
                "web_search_options": {"search_context_size": "huge"},
            },
        )
    assert last.status_code == 400 and last.json()["error"]["param"] == "web_search_options"
    assert "final user message" in last.json()["error"]["message"]
    assert unknown.status_code == 400 and "search_context_size" in unknown.text


def test_the_websocket_and_rest_turns_take_a_web_search_flag_and_their_done_carries_the_sources(api, web):
    pages, searxng = web
    token = token_for(api, "Web chat")

    done = ws_answer(api.ws_url, token, VINTREL[3], "&web_search=true")
    assert done["type"] == "done", done
    assert done["message"]["sources"][0]["url"] == pages.url(VINTREL[0])
    with api.client() as client:
        reply = client.post(
            "/conversations/Web chat/messages", json={"content": "And the Zorblax?", "web_search": True}
        )
        plain = client.post("/conversations/Web chat/messages", json={"content": "Thanks."})
    assert reply.status_code == 200, reply.text
    assert {s["url"] for s in reply.json()["message"]["sources"]} >= {pages.url("/zorblax")}
    assert plain.status_code == 200 and "sources" not in plain.json()["message"]
    saved = api.saved()["Web chat"]
    assert [m.get("web_search", False) for m in saved if m["role"] == "user"] == [True, True, False]


def test_a_search_provider_that_is_down_is_a_502_naming_it(web, local_server, tmp_path):
    pages, _ = web
    server = start_api(tmp_path / "down", local_server, **web_env(pages, f"http://127.0.0.1:{free_port()}"))
    try:
        with server.client() as client:
            answer = client.post(
                "/v1/chat/completions",
                json={
                    "model": LOCAL_MODEL_ALIAS,
                    "messages": [{"role": "user", "content": "q"}],
                    "web_search_options": {},
                },
            )
    finally:
        stop_api(server)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "web_search_failed" and "SearXNG at http://127.0.0.1" in error["message"]
    assert "Traceback" not in json.dumps(error)


def test_a_queued_turn_asks_the_worker_to_search_the_web(web, redis_server, local_server, tmp_path):
    redis_server.ensure_running()
    redis_server.flush()
    rds = redis_server
    pages, searxng = web
    folder = tmp_path / "queued"
    env = web_env(pages, searxng.base_url)
    server = start_api(folder, local_server, REDIS_URL=rds.url(), **env)
    worker = Worker(folder, local_server, rds.url(), **env)
    try:
        with server.client() as client:
            assert client.post("/conversations", json={"name": "Queued web"}).status_code in (200, 201)
            reply = client.post("/conversations/Queued web/messages", json={"content": VINTREL[3], "web_search": True})
    finally:
        worker.stop()
        stop_api(server)
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["sources"][0]["url"] == pages.url(VINTREL[0])
    question, answer = server.saved()["Queued web"]
    assert question["web_search"] is True and answer["turn_id"] == question["turn_id"]
