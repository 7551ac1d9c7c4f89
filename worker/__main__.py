"""``python -m worker`` (``make worker``): one model worker; run as many as you like, on any
machine that reaches REDIS_URL and the conversation store (CONVERSATIONS_URL).

It answers one turn at a time through the turn runner with the memory page's engine, with the configured provider
(the local model by default: it starts or reuses its own local server, LOCAL_LLM_PORT). SIGTERM or
Ctrl-C stops it after the turn in hand.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading

import redis
from pydantic import ValidationError

import utils  # noqa: F401  (sets USE_TORCH=0 for this process before llama-index is imported)
from settings import load_settings


def main() -> int:
    """Run the worker until stopped; returns the exit code (2 for a configuration mistake)."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"Parley's configuration has a mistake: {exc.errors()[0]['msg']}.", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("Set REDIS_URL: the worker takes its turns from Redis.", file=sys.stderr)
        return 2
    from controller.queue import TurnWorker
    from controller.web_search import WebSearch
    from model.redis_store import redis_client
    from model.store import StoreError, mask_url
    from model.stores import open_store
    from utils.embeddings import build_embed_model
    from utils.local_server import LOCAL_MODEL_ALIAS, LocalServer, LocalServerError
    from utils.providers import LocalEndpoint, resolve_config

    try:
        store = open_store(settings.conversations_location)
        local = None
        if settings.provider == "local":
            local = LocalServer.for_settings(settings)
        client = redis_client(settings.redis_url)
        client.ping()
    except (StoreError, LocalServerError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"Could not reach Redis at {mask_url(settings.redis_url)}: {exc}.", file=sys.stderr)
        return 1
    endpoint = LocalEndpoint(local.base_url, local.context_window, LOCAL_MODEL_ALIAS) if local else None
    config = resolve_config(settings, local=endpoint)
    try:
        web = WebSearch.from_settings(settings, functools.cache(build_embed_model))  # loaded on first search
    except ValueError as exc:
        print(f"Web search is off: PARLEY_FETCH_ALLOW could not be read ({exc}).", file=sys.stderr)
        web = None
    worker = TurnWorker(client, store, config, settings.parley_worker_claim_idle, web=web)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"Parley worker {worker.name} is answering turns from {mask_url(settings.redis_url)}.", flush=True)
    worker.run(stop, on_turn=lambda turn_id: print(f"answering {turn_id}", flush=True))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
