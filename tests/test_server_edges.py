"""The chat server's and the app's edges under attack, on real servers (`python -m api` with uvicorn,
`streamlit run`), with a scripted OpenAI-compatible provider (these tests are about the edges, not
the model): tokens of deleted conversations, U+0000, slowloris, the API docs, and Host headers."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import run_streamlit
from tests.scripted_server import Say, ScriptedServer
from tests.test_api import start_api, stop_api

#: A generous deadline for what should happen at once (these machines are shared and noisy).
GENEROUS_S = 10.0


@pytest.fixture(scope="module")
def provider():
    server = ScriptedServer([Say("Hello from the script.")]).start()
    yield server
    server.stop()


def scripted_env(provider: ScriptedServer) -> dict[str, str]:
    return {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "scripted"}


@pytest.fixture
def api(tmp_path, provider):
    running = start_api(tmp_path / "api", None, PARLEY_API_HEADER_TIMEOUT="2", **scripted_env(provider))
    yield running
    stop_api(running)


async def upgrade(uri: str, port: int) -> int:
    """The status of a websocket upgrade to ``uri`` (its host is the Host header sent), connecting to
    127.0.0.1:``port`` whatever the host: 101 when accepted."""
    try:
        async with websockets.connect(uri, host="127.0.0.1", port=port):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def _socket_turns(url: str, token: str, texts: list[str]) -> list[object]:
    """Send ``texts`` one by one on a socket; each turn's last frame, or the close code it ends with."""
    outcomes: list[object] = []
    async with websockets.connect(f"{url}/chat?token={token}") as socket_:
        for text in texts:
            try:
                await socket_.send(text)
                while True:
                    frame = await asyncio.wait_for(socket_.recv(), GENEROUS_S)
                    if '"done"' in frame or '"error"' in frame:
                        outcomes.append(frame)
                        break
            except ConnectionClosed as closed:
                outcomes.append(closed.rcvd.code if closed.rcvd else None)
                break
    return outcomes


def test_deleting_a_conversation_revokes_its_tokens_and_nothing_comes_back(api):
    with api.client() as client:
        token = client.post("/token", json={"name": "Gone soon"}).json()["token"]
        (first,) = asyncio.run(_socket_turns(api.ws_url, token, ["Hello"]))
        assert '"done"' in first
        assert client.delete("/conversations/Gone soon").status_code == 204
        assert asyncio.run(_socket_turns(api.ws_url, token, ["Still there?"])) == [4401]
        assert client.get("/conversations/Gone soon").status_code == 404  # not brought back
        assert client.get(f"/refresh_token?token={token}").status_code == 401


def test_a_conversation_deleted_behind_the_servers_back_is_not_brought_back(api):
    """The page (or another instance) deletes it in the store: the token's next turn closes with 4401."""
    from model.json_store import JsonFileStore

    with api.client() as client:
        token = client.post("/token", json={"name": "Deleted on the page"}).json()["token"]
        JsonFileStore(api.conversations).delete("Deleted on the page")
        assert asyncio.run(_socket_turns(api.ws_url, token, ["Hello"])) == [4401]
        assert client.get("/conversations/Deleted on the page").status_code == 404


def test_text_with_nul_is_stored_as_it_is(api):
    with api.client() as client:
        client.post("/conversations", json={"name": "Binary-ish"})
        turn = client.post("/conversations/Binary-ish/messages", json={"content": "a\u0000b"})
        assert turn.status_code == 200, turn.text
        stored = client.get("/conversations/Binary-ish").json()["messages"]
    assert stored[0]["content"] == "a\u0000b" and stored[1]["content"] == "Hello from the script."


def test_half_open_connections_are_closed_at_the_header_deadline_and_new_clients_are_served(api):
    port = int(api.url.rsplit(":", 1)[1])
    held = []
    for _ in range(200):  # slowloris: a request head that never ends
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        held.append(connection)
    try:
        started = time.monotonic()
        served = None
        while time.monotonic() - started < 2 + GENEROUS_S:
            try:
                if httpx.get(f"{api.url}/health", timeout=2).status_code == 200:
                    served = time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert served is not None, "no new client was served after the header deadline"
        for connection in held:  # every half-open connection was closed by the server
            connection.settimeout(GENEROUS_S)
            assert connection.recv(1024) == b""
    finally:
        for connection in held:
            connection.close()


def test_the_api_docs_are_off_and_the_schema_needs_the_key(api):
    assert httpx.get(f"{api.url}/docs").status_code == 404
    assert httpx.get(f"{api.url}/redoc").status_code == 404
    assert httpx.get(f"{api.url}/openapi.json").status_code == 401
    with api.client() as client:
        assert client.get("/openapi.json").json()["info"]["title"] == "Parley"


def test_the_api_docs_can_be_opened_on_purpose(tmp_path, provider):
    opened = start_api(tmp_path / "docs", None, PARLEY_API_DOCS="1", **scripted_env(provider))
    try:
        assert httpx.get(f"{opened.url}/docs").status_code == 200
        assert httpx.get(f"{opened.url}/openapi.json").status_code == 200
    finally:
        stop_api(opened)


def test_a_foreign_host_header_is_refused_for_http_and_websockets(api):
    assert httpx.get(f"{api.url}/health", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(f"{api.url}/health", headers={"Host": "localhost"}).status_code == 200
    with api.client() as client:
        token = client.post("/token", json={"name": "Rebinding"}).json()["token"]

    port = int(api.url.rsplit(":", 1)[1])
    assert asyncio.run(upgrade(f"ws://evil.example:{port}/chat?token={token}", port)) == 400
    assert asyncio.run(upgrade(f"ws://127.0.0.1:{port}/chat?token={token}", port)) == 101


@pytest.fixture
def streamlit_on_script(tmp_path, provider):
    url, process = run_streamlit({**scripted_env(provider), "CONVERSATIONS_FILE": str(tmp_path / "c.json")})
    yield url
    process.terminate()
    process.wait(10)


def test_the_app_refuses_a_websocket_for_a_foreign_host(streamlit_on_script):
    port = int(streamlit_on_script.rsplit(":", 1)[1])
    assert asyncio.run(upgrade(f"ws://evil.example:{port}/_stcore/stream", port)) in (400, 403)
    assert asyncio.run(upgrade(f"ws://127.0.0.1:{port}/_stcore/stream", port)) == 101


def test_cors_preflight_is_answered_for_listed_origins_only(tmp_path, provider):
    opened = start_api(tmp_path / "cors", None, PARLEY_API_CORS_ORIGINS="http://app.example", **scripted_env(provider))
    try:
        asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        listed = httpx.options(f"{opened.url}/v1/chat/completions", headers={"Origin": "http://app.example", **asked})
        assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.options(f"{opened.url}/v1/chat/completions", headers={"Origin": "http://evil.example", **asked})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    finally:
        stop_api(opened)
