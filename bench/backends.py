"""Benchmarks of the conversation backends and the turn queue, on throwaway real servers.

- saving one turn (``append`` of one message, what a chat turn does) into a store holding 100,
  1,000, 5,000 and 100,000 conversations of 10 messages, for the JSON file, PostgreSQL and Redis;
- turns per second through the Redis queue with 1, 2 and 4 workers, 12 turns submitted at once over
  HTTP: each worker with its own local model server (CPU-bound on 2 cores), and all workers asking
  one OpenAI-compatible server that streams at a fixed, remote-like pace (as Groq or OpenAI would).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from bench.data import make_conversations
from model.message import Message
from model.stores import open_store
from tests.servers import PostgresServer, RedisServer
from utils.thread_tuning import core_count

SIZES = (100, 1_000, 5_000, 100_000)
MESSAGES = 10
SAVES = 20


def _fill_postgres(url: str, conversations: dict) -> None:
    """Bulk-load conversations with COPY (the store's own tables, created by opening it)."""
    open_store(url).close()
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur, cur.copy("COPY parley_conversations (id, name, last_activity) FROM STDIN") as copy:
            for i, (name, messages) in enumerate(conversations.items(), start=1):
                copy.write_row((i, name, max(m.get("timestamp", "") for m in messages)))
        with (
            conn.cursor() as cur,
            cur.copy("COPY parley_messages (conversation_id, position, message) FROM STDIN") as copy,
        ):
            for i, messages in enumerate(conversations.values(), start=1):
                for position, message in enumerate(messages):
                    copy.write_row((i, position, json.dumps(message)))
        conn.execute("SELECT setval('parley_conversations_id_seq', %s)", (len(conversations),))


def _fill_redis(url: str, conversations: dict) -> None:
    store = open_store(url)
    client = store._redis  # bulk load through one pipeline per 1,000 conversations
    items = list(conversations.items())
    for start in range(0, len(items), 1000):
        pipe = client.pipeline(transaction=False)
        for name, messages in items[start : start + 1000]:
            pipe.rpush(f"parley:conv:{name}", *[json.dumps(m) for m in messages])
            pipe.zadd("parley:conversations", {name: start})
        pipe.execute()
    store.close()


def bench_saves() -> dict[str, dict[int, float]]:
    """Median ms to save one turn (append one message) at each size, per backend."""
    pg, rds = PostgresServer(fsync=True), RedisServer()  # redis: appendfsync always
    results: dict[str, dict[int, float]] = {"file": {}, "postgresql": {}, "redis": {}}
    try:
        for size in SIZES:
            conversations = make_conversations(size, MESSAGES)
            locations = {}
            path = Path(tempfile.mkdtemp()) / "conversations.json"
            path.write_text(json.dumps(conversations, ensure_ascii=False), encoding="utf-8")
            locations["file"] = str(path)
            locations["postgresql"] = pg.new_database()
            _fill_postgres(locations["postgresql"], conversations)
            rds.flush()
            locations["redis"] = rds.url()
            _fill_redis(locations["redis"], conversations)
            name = next(iter(conversations))
            for backend, location in locations.items():
                store = open_store(location)
                store.append(name, [Message.user("warm up")])
                times = []
                for i in range(SAVES):
                    started = time.perf_counter()
                    store.append(name, [Message.user(f"turn {i}")])
                    times.append((time.perf_counter() - started) * 1000)
                store.close()
                results[backend][size] = statistics.median(times)
                print(
                    f"  save one turn, {backend}, {size:,} conversations: {results[backend][size]:.2f} ms", flush=True
                )
            path.unlink()
    finally:
        pg.remove()
        rds.remove()
    return results


async def _all_turns(url: str, headers: dict[str, str], names: list[str]) -> None:
    """One turn in each conversation of ``names``, all at once; every answer must be a 200."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        answers = await asyncio.gather(
            *(client.post(f"/conversations/{n}/messages", json={"content": "Write a short poem."}) for n in names)
        )
    failed = [a.text for a in answers if a.status_code != 200]
    assert not failed, failed


#: The remote-like backend of the paced queue run: time to first token, and tokens per second per
#: stream (about what Groq or OpenAI give one stream; each worker holds one stream at a time).
PACED_FIRST_TOKEN_S, PACED_TOKENS_PER_S, PACED_WORDS = 0.3, 40.0, 64


def bench_queue(
    worker_counts: tuple[int, ...] = (1, 2, 4), turns: int = 12, max_tokens: int = 64, backend: str = "local"
) -> dict[int, float]:
    """Turns per second through the queue for each number of workers.

    Args:
        worker_counts: the numbers of ``python -m worker`` processes to try.
        turns: turns submitted at once over HTTP, one per conversation.
        max_tokens: most tokens per reply.
        backend: ``local`` (each worker starts its own local model server: CPU-bound on 2 cores) or
            ``paced`` (every worker asks one OpenAI-compatible server that streams at a fixed, remote-like
            pace: ``PACED_FIRST_TOKEN_S`` to the first token, then ``PACED_TOKENS_PER_S`` per stream).
    """
    from tests.scripted_server import Say, ScriptedServer
    from utils.local_server import LocalServer

    results: dict[int, float] = {}
    rds = RedisServer()
    chat_model = LocalServer.ensure(None, context_window=2048)  # the chat server's own (it answers no turn)
    paced = None
    if backend == "paced":
        text = " ".join(f"word{i}" for i in range(PACED_WORDS))
        paced = ScriptedServer([Say(text)], PACED_FIRST_TOKEN_S, PACED_TOKENS_PER_S).start()
    try:
        for count in worker_counts:
            results[count] = _queue_run(rds, chat_model, count, turns, max_tokens, paced)
            print(f"  queue ({backend}): {count} worker(s): {results[count]:.2f} turns/s", flush=True)
    finally:
        chat_model.stop()
        rds.remove()
        if paced is not None:
            paced.stop()
    return results


def _queue_run(rds: RedisServer, chat_model: object, count: int, turns: int, max_tokens: int, paced: object) -> float:
    """One run of ``bench_queue``: start the chat server and ``count`` workers, let each answer one
    warm-up turn (its first turn imports and connects what it needs), then answer ``turns`` at once; turns/s."""
    import os
    import subprocess
    import sys

    from bench.api import KEY, _start

    app_dir = Path(__file__).resolve().parent.parent
    rds.flush()
    folder = Path(tempfile.mkdtemp())
    os.environ["REDIS_URL"] = rds.url()
    process, url = _start(chat_model, folder, max_tokens)  # type: ignore[arg-type]
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_LLM_PORT"}
    env.update(
        {
            "REDIS_URL": rds.url(),
            "CONVERSATIONS_FILE": str(folder / "conversations.json"),
            "LLM_MAX_TOKENS": str(max_tokens),
            "LLM_TEMPERATURE": "0",
            "LOCAL_CONTEXT_WINDOW": "2048",
        }
    )
    if paced is None:
        # Each worker's own model server gets its share of the cores: with the measured count (every
        # core, on 2 cores) for each, two servers generating at once oversubscribe the cores and
        # llama.cpp's spinning threads slow each other down by orders of magnitude.
        env["LOCAL_LLM_THREADS"] = str(max(1, core_count() // count))
    else:
        base_url = paced.base_url  # type: ignore[attr-defined]
        env.update({"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": base_url, "LLM_MODEL": "scripted"})
    workers = []
    for index in range(count):
        log = open(folder / f"worker-{index}.log", "wb")  # noqa: SIM115 (closed with the process)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "worker"], cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    for index in range(count):  # a local worker starts its own model server: wait until all answer
        deadline = time.monotonic() + 180
        while b"is answering turns" not in (folder / f"worker-{index}.log").read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError("a worker did not start")
            time.sleep(0.2)
    headers = {"Authorization": f"Bearer {KEY}"}
    names = [f"q{i}" for i in range(turns)]
    warm = [f"warm{i}" for i in range(count)]
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        for name in names + warm:
            client.post("/conversations", json={"name": name})
    asyncio.run(_all_turns(url, headers, warm))  # each worker's first turn loads what it needs: not measured
    started = time.perf_counter()
    asyncio.run(_all_turns(url, headers, names))
    rate = turns / (time.perf_counter() - started)
    for worker in workers:
        worker.terminate()
        worker.wait(30)
    process.terminate()
    process.wait(15)
    del os.environ["REDIS_URL"]
    return rate
