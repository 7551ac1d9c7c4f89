"""The FastAPI app: routers, errors in OpenAI's JSON, the request-size limit and the shared state.

``create_app(settings, keys)`` builds it; ``python -m api`` serves it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ServerState
from api.errors import error_body, install_handlers
from api.routes import conversations, openai_compat, sessions
from api.streaming import ModelSlots
from controller.knowledge_base import KnowledgeBases
from controller.sessions import RedisSessionTokens, SessionTokens
from model.redis_store import async_redis_client, redis_client
from model.stores import open_store
from settings import Settings
from utils.embeddings import build_embed_model
from utils.local_server import LocalServer


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, and no more of it is read.

    The body is read here first (at most ``limit`` bytes are kept), then handed to the app as it was.

    Args:
        app: the app it wraps.
        limit: PARLEY_API_MAX_BODY, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        sentence = f"The request body is larger than this server accepts ({self.limit:,} bytes, PARLEY_API_MAX_BODY)."
        body = json.dumps(error_body(413, sentence, "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings, keys: list[str], start_local: bool = True) -> FastAPI:
    """Build the chat server.

    Args:
        settings: the loaded settings (provider, store, limits).
        keys: the accepted API keys (at least one).
        start_local: start or reuse the local model server at start when the provider is local.

    Returns:
        the FastAPI app; its state is made when it starts (the local server may take seconds).
    """
    if not keys:
        raise ValueError("the chat server needs at least one API key")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        local = None
        if start_local and settings.provider == "local":
            local = LocalServer.for_settings(settings)
        redis_async = redis_sync = None
        tokens = SessionTokens(settings.parley_session_ttl)
        if settings.redis_url:  # tokens shared by every server, turns answered by the workers
            redis_async = async_redis_client(settings.redis_url)
            redis_sync = redis_client(settings.redis_url)
            tokens = RedisSessionTokens(redis_sync, settings.parley_session_ttl)
        app.state.parley = ServerState(
            settings=settings,
            keys=list(keys),
            store=open_store(settings.conversations_location),
            tokens=tokens,
            slots=ModelSlots(settings.parley_api_max_concurrent, settings.parley_api_max_queue),
            knowledge_bases=KnowledgeBases(settings.knowledge_base_dir, build_embed_model),
            local=local,
            redis=redis_async,
            redis_sync=redis_sync,
        )
        try:
            yield
        finally:
            if local is not None:
                local.stop()

    app = FastAPI(
        title="Parley",
        summary="A private, local-first chat server: sessions over a websocket, saved conversations, "
        "and an OpenAI-compatible /v1.",
        version="1.0",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.parley_api_max_body)
    app.include_router(sessions.router)
    app.include_router(conversations.router)
    app.include_router(openai_compat.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Open to everyone: ``{"status": "ok", "provider", "model"}`` once the server has started."""
        state: ServerState = app.state.parley
        config = state.config()
        return {"status": "ok", "provider": config.provider, "model": config.model}

    return app
