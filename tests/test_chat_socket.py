"""The token-session websocket (``WS /chat``) on a scripted provider: every frame names its turn; a
message sent while a reply streams waits and is answered after it, in order, and saved; a message
still waiting when the client leaves is saved unanswered; ``expires_in`` is whole seconds."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from tests.scripted_server import Say, ScriptedServer
from tests.test_api import start_api, stop_api


@pytest.fixture
def paced(tmp_path):
    """Parley's chat server on a provider that streams 20 words a second (so a reply takes a while)."""
    provider = ScriptedServer([Say("one two three four five six seven eight"), Say("second reply")], 0.0, 20).start()
    env = {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "scripted"}
    api = start_api(tmp_path / "socket", None, **env)
    yield api, provider
    stop_api(api)
    provider.stop()


def token(api, name: str) -> dict:
    with api.client() as client:
        return client.post("/token", json={"name": name}).json()


async def frames_until(socket, done: int) -> list[dict]:
    """The frames received until ``done`` turns have ended (done or error)."""
    frames: list[dict] = []
    while sum(f["type"] in ("done", "error") for f in frames) < done:
        frames.append(json.loads(await asyncio.wait_for(socket.recv(), 30)))
    return frames


def test_a_message_sent_while_a_reply_streams_is_answered_after_it_in_order_and_saved(paced):
    api, _ = paced
    issued = token(api, "Two at once")
    assert isinstance(issued["expires_in"], int) and issued["expires_in"] == 3600

    async def talk() -> list[dict]:
        async with websockets.connect(f"{api.ws_url}/chat?token={issued['token']}") as socket:
            await socket.send("First question")
            await socket.send("Second question")  # at once: the first reply has not started
            await socket.send(b"\x00binary")  # not a message: refused, naming its own turn
            return await frames_until(socket, 3)

    frames = asyncio.run(talk())
    assert all("turn" in frame for frame in frames)
    refused = [f for f in frames if f["type"] == "error"]
    assert len(refused) == 1 and "text frame" in refused[0]["message"]
    answered = [f for f in frames if f is not refused[0]]
    turns = list(dict.fromkeys(f["turn"] for f in answered))
    assert len(turns) == 2 and refused[0]["turn"] not in turns
    first, second = ([f for f in answered if f["turn"] == t] for t in turns)
    assert answered.index(first[-1]) < answered.index(second[0])  # the second waited for the first
    assert "".join(f["text"] for f in first if f["type"] == "delta") == "one two three four five six seven eight"
    assert second[-1]["message"]["content"] == "second reply"
    saved = api.saved()["Two at once"]
    assert [(m["role"], m["content"]) for m in saved] == [
        ("user", "First question"),
        ("assistant", "one two three four five six seven eight"),
        ("user", "Second question"),
        ("assistant", "second reply"),
    ]
    assert [m["turn_id"] for m in saved] == [turns[0], turns[0], turns[1], turns[1]]


def test_a_message_still_waiting_when_the_client_leaves_is_saved_unanswered(paced):
    api, _ = paced
    issued = token(api, "Left early")

    async def talk() -> None:
        async with websockets.connect(f"{api.ws_url}/chat?token={issued['token']}") as socket:
            await socket.send("Answer this")
            await socket.send("And this later")
            await asyncio.wait_for(socket.recv(), 30)  # the first reply has begun: leave now

    asyncio.run(talk())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(api.saved().get("Left early", [])) < 3:
        time.sleep(0.2)
    saved = api.saved()["Left early"]
    assert [m["role"] for m in saved] == ["user", "assistant", "user"]
    assert saved[1]["stopped"] is True and saved[2]["content"] == "And this later"
