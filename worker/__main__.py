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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import redis
from pydantic import ValidationError

import utils  # noqa: F401  (sets USE_TORCH=0 for this process before llama-index is imported)
from settings import Settings, load_settings

if TYPE_CHECKING:
    from model.store import BaseConversationStore
    from utils.providers import LLMConfig, LocalEndpoint


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
    from model.redis_store import redis_client
    from model.store import StoreError, mask_url
    from model.stores import open_store
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
    from utils.knowledge_bases import KnowledgeBaseError

    try:
        web, agents, tool_server = _helpers(settings, store, endpoint)
    except KnowledgeBaseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    worker = TurnWorker(client, store, config, settings.parley_worker_claim_idle, web=web, agents=agents)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"Parley worker {worker.name} is answering turns from {mask_url(settings.redis_url)}.", flush=True)
    worker.run(stop, on_turn=lambda turn_id: print(f"answering {turn_id}", flush=True))
    store.close()
    tool_server.stop()
    return 0


def _helpers(settings: Settings, store: BaseConversationStore, local: LocalEndpoint | None) -> tuple[Any, Any, Any]:
    """What turns may need besides the model: the web search (None when PARLEY_FETCH_ALLOW cannot be
    read, said on stderr), the assistants' agents (their knowledge bases and the local model's tool
    server), and that tool server (started on first need). The embedding model loads on first use.

    Raises:
        KnowledgeBaseError: the knowledge-base store the settings name cannot be opened.
    """
    from controller.assistants import AgentSetup
    from controller.web_search import WebSearch
    from utils.embeddings import build_embed_model
    from utils.knowledge_bases import knowledge_bases_for
    from utils.local_server import ToolServer

    embed = functools.cache(build_embed_model)
    try:
        web = WebSearch.from_settings(settings, embed)
    except ValueError as exc:
        print(f"Web search is off: PARLEY_FETCH_ALLOW could not be read ({exc}).", file=sys.stderr)
        web = None
    tools = ToolServer(
        settings.local_model_path,
        settings.local_context_window,
        settings.local_server_start_timeout,
        settings.local_llm_threads,
    )

    def tool_config(config: LLMConfig) -> LLMConfig:
        return replace(config, tools_base_url=tools.base_url()) if config.provider == "local" and local else config

    agents = AgentSetup(settings, store, knowledge_bases_for(settings, embed), local, tool_config)
    return web, agents, tools


if __name__ == "__main__":
    sys.exit(main())
