"""Benchmarks of the chat server (`python -m api`) against the raw local model server, in one run.

- streamed characters/s and time to first token: the websocket (``WS /chat``) and ``/v1`` (openai
  SDK) vs the OpenAI SDK straight from the llama-cpp server, the same request (greedy, same prompt,
  same max tokens, no system prompt), interleaved;
- ``GET /conversations`` with 1,000 saved conversations: p50 and p99 latency alone, and while 8
  streams run through ``/v1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai
import websockets

from bench.data import write_file
from utils.local_server import LOCAL_MODEL_ALIAS, LocalServer, free_port

APP_DIR = Path(__file__).resolve().parent.parent
KEY = "bench-" + "key-0123456789abcdef"


def _start(server: LocalServer, folder: Path, max_tokens: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PARLEY_API_PORT": str(port),
        "PARLEY_API_KEYS": KEY,
        "LOCAL_LLM_PORT": str(server.port),
        "CONVERSATIONS_FILE": str(folder / "conversations.json"),
        "KNOWLEDGE_BASE_DIR": str(folder / "kbs"),
        "LLM_TEMPERATURE": "0",
        "LLM_MAX_TOKENS": str(max_tokens),
        "LLM_SYSTEM_PROMPT": "",
        "PARLEY_API_MAX_CONCURRENT": "8",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "api"], cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("python -m api did not start")


def _rates(start: float, stamps: list[float], chars: list[int]) -> dict:
    span = stamps[-1] - stamps[0]
    return {
        "ttft_ms": (stamps[0] - start) * 1000,
        "chars_per_s": (chars[-1] - chars[0]) / span if span > 0 else 0.0,
        "chars": chars[-1],
    }


def sdk_stream(base_url: str, prompt: str, max_tokens: int, key: str = "none") -> dict:
    """One streamed reply through the OpenAI SDK from ``base_url`` (raw server or Parley's /v1)."""
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    start = time.perf_counter()
    stamps, chars, text = [], [], ""
    for chunk in client.chat.completions.create(
        model=LOCAL_MODEL_ALIAS,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
    ):
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            text += delta
            stamps.append(time.perf_counter())
            chars.append(len(text))
    return _rates(start, stamps, chars)


def ws_stream(url: str, prompt: str) -> dict:
    """One streamed reply over the websocket, in a new session (so the history is empty)."""
    token = httpx.post(
        f"{url}/token", json={"name": f"bench {time.perf_counter_ns()}"}, headers={"Authorization": f"Bearer {KEY}"}
    ).json()["token"]

    async def talk() -> dict:
        async with websockets.connect(f"{url.replace('http', 'ws')}/chat?token={token}") as socket:
            start = time.perf_counter()
            await socket.send(prompt)
            stamps, chars, text = [], [], ""
            while True:
                frame = json.loads(await socket.recv())
                if frame["type"] != "delta":
                    return _rates(start, stamps, chars)
                text += frame["text"]
                stamps.append(time.perf_counter())
                chars.append(len(text))

    return asyncio.run(talk())


def bench_streams(server: LocalServer, prompt: str, max_tokens: int, runs: int) -> dict:
    """Websocket and /v1 vs the raw server, interleaved; medians of ``runs``."""
    folder = Path(tempfile.mkdtemp())
    process, url = _start(server, folder, max_tokens)
    try:
        sdk_stream(server.base_url, prompt, max_tokens)  # warm up
        raw, v1, ws = [], [], []
        for _ in range(runs):
            raw.append(sdk_stream(server.base_url, prompt, max_tokens))
            v1.append(sdk_stream(f"{url}/v1", prompt, max_tokens, KEY))
            ws.append(ws_stream(url, prompt))
    finally:
        process.terminate()
        process.wait(15)
    out: dict = {}
    for name, rows in (("raw", raw), ("v1", v1), ("ws", ws)):
        out[f"{name}_chars_per_s"] = statistics.median(r["chars_per_s"] for r in rows)
        out[f"{name}_ttft_ms"] = statistics.median(r["ttft_ms"] for r in rows)
    for name in ("v1", "ws"):
        out[f"{name}_ratio"] = out[f"{name}_chars_per_s"] / out["raw_chars_per_s"]
        out[f"{name}_ttft_overhead_ms"] = out[f"{name}_ttft_ms"] - out["raw_ttft_ms"]
    return out


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50_ms": statistics.median(ordered), "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def bench_listing_under_load(server: LocalServer, requests: int = 200, streams: int = 8) -> dict:
    """``GET /conversations`` latency with 1,000 saved conversations, idle and while ``streams`` run."""
    folder = Path(tempfile.mkdtemp())
    write_file(folder / "conversations.json", 1000)
    process, url = _start(server, folder, 128)
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

            def measure() -> list[float]:
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = client.get("/conversations", params={"limit": 50})
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
                return times

            idle = measure()
            stop = threading.Event()
            done = [0]

            def stream_forever() -> None:
                while not stop.is_set():
                    sdk_stream(f"{url}/v1", "Write a long story about a dragon.", 128, KEY)
                    done[0] += 1

            workers = [threading.Thread(target=stream_forever, daemon=True) for _ in range(streams)]
            for worker in workers:
                worker.start()
            time.sleep(2)
            loaded = measure()
            stop.set()
            for worker in workers:
                worker.join(120)
    finally:
        process.terminate()
        process.wait(15)
    return {"idle": _percentiles(idle), "loaded": _percentiles(loaded), "streams_finished": done[0]}
