"""The FastAPI app: routers, errors in OpenAI's JSON, middleware and the shared state.

``create_app(settings, keys)`` builds it; ``python -m api`` serves it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from api.deps import ServerState
from api.errors import install_handlers
from api.middleware import BodyLimit
from api.routes import chat_socket, conversations, openai_compat, tokens
from api.streaming import ModelSlots
from controller.chat_tokens import ChatTokens, RedisChatTokens
from model.redis_store import async_redis_client, redis_client
from model.stores import open_store
from settings import Settings
from utils.embeddings import build_embed_model
from utils.knowledge_bases import KnowledgeBases
from utils.local_server import LocalServer


class Health(BaseModel):
    """``GET /health``: the server is up, with the provider and model it answers with."""

    status: str
    provider: str
    model: str


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
        chat_tokens = ChatTokens(settings.parley_session_ttl)
        if settings.redis_url:  # tokens shared by every server, turns answered by the workers
            redis_async = async_redis_client(settings.redis_url)
            redis_sync = redis_client(settings.redis_url)
            chat_tokens = RedisChatTokens(redis_sync, settings.parley_session_ttl)
        app.state.parley = ServerState(
            settings=settings,
            keys=list(keys),
            store=open_store(settings.conversations_location),
            tokens=chat_tokens,
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
        summary="A private, local-first chat server: chat tokens and a websocket, saved conversations, "
        "and an OpenAI-compatible /v1.",
        version="1.0",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.parley_api_max_body)
    app.include_router(tokens.router)
    app.include_router(chat_socket.router)
    app.include_router(conversations.router)
    app.include_router(openai_compat.router)

    @app.get("/health", tags=["health"], response_model=Health)
    def health() -> Health:
        """Open to everyone: ``{"status": "ok", "provider", "model"}`` once the server has started."""
        state: ServerState = app.state.parley
        config = state.config()
        return Health(status="ok", provider=config.provider, model=config.model)

    return app
