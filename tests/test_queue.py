"""The chat server with REDIS_URL: chat tokens in Redis, turns through the Redis Streams queue to
model workers (`python -m worker`), a worker killed mid-turn, Redis restarted or down. Real
redis-server, real uvicorn, real workers, the real local model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
import websockets
from websockets.exceptions import ConnectionClosed

from controller.queue import REPLY_PREFIX, RESTART_SENTENCE
from tests.conftest import APP_DIR, PROVIDER_VARS
from tests.test_api import TIMEOUT, start_api, stop_api, token_for, ws_turn


@pytest.fixture
def rds(redis_server):
    """The run's redis-server, running and empty."""
    redis_server.ensure_running()
    redis_server.flush()
    return redis_server


class Worker:
    """A `python -m worker` process and what it printed."""

    def __init__(self, folder: Path, local_server, redis_url: str, **env: str) -> None:
        self.log = folder / f"worker-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
        environment.update(
            {
                "REDIS_URL": redis_url,
                "LOCAL_LLM_PORT": str(local_server.port),
                "CONVERSATIONS_FILE": str(folder / "conversations.json"),
                "LLM_MAX_TOKENS": "40",
                "PARLEY_WORKER_CLAIM_IDLE": "2",
                **env,
            }
        )
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker"], cwd=APP_DIR, env=environment, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while "is answering turns" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"python -m worker did not start:\n{self.output()[-2000:]}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def turns(self) -> list[str]:
        return [line.split()[1] for line in self.output().splitlines() if line.startswith("answering ")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def queued(rds, local_server, tmp_path):
    """A chat server and a way to start workers, all on one Redis (emptied first)."""
    rds.flush()
    folder = tmp_path / "queued"
    api = start_api(folder, local_server, REDIS_URL=rds.url())
    workers: list[Worker] = []

    def worker(**env: str) -> Worker:
        workers.append(Worker(folder, local_server, rds.url(), **env))
        return workers[-1]

    yield api, worker
    for one in workers:
        one.stop()
    stop_api(api)


def test_a_turn_goes_through_the_queue_to_a_worker_and_is_saved_once(queued, rds):
    api, worker = queued
    answering = worker()
    token = token_for(api, "Queued chat")

    async def talk() -> dict:
        async with websockets.connect(f"{api.ws_url}/chat?token={token}") as socket:
            deltas, done = await ws_turn(socket, "Hello through the queue!")
            assert done["type"] == "done" and "".join(deltas).strip() == done["message"]["content"]
            return done

    done = asyncio.run(talk())
    saved = api.saved()["Queued chat"]
    assert [m["role"] for m in saved] == ["user", "assistant"]
    assert saved[0]["turn_id"] == saved[1]["turn_id"] == answering.turns()[0]
    assert saved[1]["content"] == done["message"]["content"]
    client = redis.Redis(port=rds.port, decode_responses=True)
    assert client.xpending("parley:turns", "parley-workers")["pending"] == 0  # acknowledged
    assert 0 < client.ttl(REPLY_PREFIX + saved[0]["turn_id"]) <= 600  # the reply stream expires
    with api.client() as http:  # a turn over HTTP goes through the queue too
        turn = http.post("/conversations/Queued chat/messages", json={"content": "And once more."})
    assert turn.status_code == 200 and turn.json()["message"]["turn_id"] == answering.turns()[1]


def test_a_worker_answers_in_the_part_of_the_store_of_the_owner_the_turn_carries(queued, rds):
    from controller.queue import new_turn, submit
    from model.json_store import JsonFileStore

    api, worker = queued
    worker()
    local = JsonFileStore(api.conversations)
    ada = local.owned_by("ada-subject")
    local.save("Notes", [])  # the local owner's conversation of the same name stays untouched
    turn_id, message = new_turn("Notes", "Say hello to Ada.")
    ada.append("Notes", [message])
    submit(redis.Redis(port=rds.port, decode_responses=True), turn_id, "Notes", message.content, owner="ada-subject")
    deadline = time.monotonic() + TIMEOUT
    while len(ada.get("Notes") or []) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    answered = ada.get("Notes") or []
    assert [m.role.value for m in answered] == ["user", "assistant"] and answered[1].turn_id == turn_id
    assert local.get("Notes") == []


def test_session_tokens_live_in_redis_shared_by_two_servers_and_expire(rds, local_server, tmp_path):
    rds.flush()
    one = start_api(tmp_path / "one", local_server, REDIS_URL=rds.url(), PARLEY_SESSION_TTL="2")
    two = start_api(tmp_path / "two", local_server, REDIS_URL=rds.url(), PARLEY_SESSION_TTL="2")
    try:
        token = token_for(one, "Shared session")
        with two.client() as client:
            refreshed = client.get("/refresh_token", params={"token": token})
        assert refreshed.status_code == 200 and refreshed.json()["name"] == "Shared session"
        assert redis.Redis(port=rds.port).pttl(f"parley:session:{token}") > 0
        time.sleep(2.5)

        async def connect() -> tuple[int, str]:
            async with websockets.connect(f"{two.ws_url}/chat?token={token}") as socket:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), 10)
                return closed.value.rcvd.code, closed.value.rcvd.reason

        code, reason = asyncio.run(connect())
        assert code == 4401 and "expired" in reason
    finally:
        stop_api(one)
        stop_api(two)


def test_a_worker_killed_mid_turn_loses_nothing_and_doubles_nothing(queued, rds):
    """2 workers, 10 turns in flight, one worker SIGKILLed while it streams: every turn ends with
    exactly one complete assistant message, and its client is told the worker restarted."""
    api, worker = queued
    first = worker(LLM_MAX_TOKENS="120")
    second = worker(LLM_MAX_TOKENS="120")
    names = [f"Crash test {i}" for i in range(10)]
    tokens = {name: token_for(api, name) for name in names}
    client = redis.Redis(port=rds.port, decode_responses=True)
    killed: list[str] = []

    def kill_first_mid_stream() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            turns = first.turns()
            if turns and client.xlen(REPLY_PREFIX + turns[-1]) >= 3:  # its deltas are flowing
                os.kill(first.process.pid, signal.SIGKILL)
                killed.append(turns[-1])
                return
            time.sleep(0.005)

    async def one(name: str) -> list[dict]:
        frames = []
        async with websockets.connect(f"{api.ws_url}/chat?token={tokens[name]}") as socket:
            await socket.send(f"Tell me a story about the number {name.split()[-1]}.")
            while not frames or frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)))
        return frames

    async def everyone() -> list[list[dict]]:
        killer = asyncio.get_running_loop().run_in_executor(None, kill_first_mid_stream)
        results = await asyncio.gather(*(one(name) for name in names))
        await killer
        return results

    results = asyncio.run(everyone())
    assert killed, "the first worker never streamed a turn"
    saved = api.saved()
    for name, frames in zip(names, results, strict=True):
        assert frames[-1]["type"] == "done", (name, frames[-1])
        messages = saved[name]
        replies = [m for m in messages if m["role"] == "assistant" and not m.get("incomplete")]
        assert [m["role"] for m in messages] == ["user", "assistant"], (name, messages)
        assert len(replies) == 1 and replies[0]["turn_id"] == messages[0]["turn_id"]
        assert replies[0]["content"] == frames[-1]["message"]["content"]
    restarted = [frames for frames in results if any(f["type"] == "restart" for f in frames)]
    assert len(restarted) == 1 and any(f.get("message") == RESTART_SENTENCE for f in restarted[0])
    assert killed[0] in second.turns()
    assert client.xpending("parley:turns", "parley-workers")["pending"] == 0


def test_redis_restarted_between_two_turns_loses_nothing(queued, rds):
    api, worker = queued
    worker()
    token = token_for(api, "Across a Redis restart")

    async def turn(text: str) -> dict:
        async with websockets.connect(f"{api.ws_url}/chat?token={token}") as socket:
            return (await ws_turn(socket, text))[1]

    assert asyncio.run(turn("Before the restart."))["type"] == "done"
    rds.restart()  # the append-only file keeps the session, the stream and the group
    after = asyncio.run(turn("After the restart."))
    assert after["type"] == "done", after
    saved = [m["content"] for m in api.saved()["Across a Redis restart"] if m["role"] == "user"]
    assert saved == ["Before the restart.", "After the restart."]
    assert len(api.saved()["Across a Redis restart"]) == 4


def test_redis_down_is_a_503_with_a_sentence_and_the_rest_keeps_working(local_server, tmp_path, app_env):
    from utils.local_server import free_port

    api = start_api(tmp_path / "down", local_server, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        with api.client() as client:
            refused = client.post("/token", json={"name": "No Redis"})
            assert refused.status_code == 503
            assert "Redis is not reachable" in refused.json()["error"]["message"]
            assert client.get("/conversations").status_code == 200  # the store is the JSON file
        assert "Traceback" not in api.log()
    finally:
        stop_api(api)
    from tests.test_pages import MEMORY, chat_texts, run, send

    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        at = send(run(MEMORY), "The page does not need Redis")
        assert chat_texts(at)[1][1].strip()
    finally:
        del os.environ["REDIS_URL"]


def test_no_worker_running_is_told_instead_of_hanging(rds, local_server, tmp_path):
    rds.flush()
    api = start_api(tmp_path / "lonely", local_server, REDIS_URL=rds.url(), PARLEY_QUEUE_TIMEOUT="2")
    try:
        with api.client() as client:
            client.post("/conversations", json={"name": "Nobody home"})
            answer = client.post("/conversations/Nobody home/messages", json={"content": "Anyone?"})
        assert answer.status_code == 504 and "No model worker answered within 2 s" in answer.json()["error"]["message"]
        assert [m["content"] for m in api.saved()["Nobody home"]] == ["Anyone?"]  # the message is kept
    finally:
        stop_api(api)
        httpx.Client().close()
