"""The FastAPI app: routers, errors in OpenAI's JSON, middleware and the shared state.

``create_app(settings, keys)`` builds it; ``python -m api`` serves it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from api.deps import ServerState, require_key
from api.errors import install_handlers
from api.middleware import BodyLimit, HeadAsGet, RequestId
from api.routes import assistants, audio, chat_socket, conversations, openai_compat, tokens
from api.streaming import ModelSlots
from controller.chat_tokens import ChatTokens, RedisChatTokens
from model.api_keys import ApiKeys
from model.redis_store import async_redis_client, redis_client
from model.stores import open_store
from settings import Settings
from utils.accounts import auth_metadata_url
from utils.embeddings import build_embed_model
from utils.knowledge_bases import knowledge_bases_for
from utils.local_server import LocalServer


class Health(BaseModel):
    """``GET /health``: the server is up, with the provider and model it answers with."""

    status: str
    provider: str
    model: str


#: Streamlit's own secrets files when its ``secrets.files`` option is not set: the user's, then this
#: folder's (a later file wins).
STREAMLIT_SECRETS_FILES = ("~/.streamlit/secrets.toml", ".streamlit/secrets.toml")


def accounts_on() -> bool:
    """True when Streamlit's secrets files (``STREAMLIT_SECRETS_FILES``, the ones the pages read
    when started from this folder) turn sign-in on with an ``[auth]`` section. Streamlit itself is
    not imported: its loggers would print the websocket's URL, chat token and all."""
    return auth_metadata_url(STREAMLIT_SECRETS_FILES) is not None


def server_state(settings: Settings, keys: list[str], start_local: bool) -> ServerState:
    """The state every route shares, made at start: the store, the chat tokens (in Redis with
    REDIS_URL), the bound on model calls, the knowledge bases, the local model server when the
    provider is local and ``start_local``, whether accounts are on and the per-person API keys.

    Raises:
        StoreError: the store cannot be opened.
        KnowledgeBaseError: the knowledge-base store cannot be opened.
        LocalServerError: the local model server does not start.
    """
    local = LocalServer.for_settings(settings) if start_local and settings.provider == "local" else None
    redis_async = redis_sync = None
    chat_tokens = ChatTokens(settings.parley_session_ttl)
    if settings.redis_url:  # tokens shared by every server, turns answered by the workers
        redis_async = async_redis_client(settings.redis_url)
        redis_sync = redis_client(settings.redis_url)
        chat_tokens = RedisChatTokens(redis_sync, settings.parley_session_ttl)
    store = open_store(settings.conversations_location)
    return ServerState(
        settings=settings,
        keys=list(keys),
        store=store,
        tokens=chat_tokens,
        slots=ModelSlots(settings.parley_api_max_concurrent, settings.parley_api_max_queue),
        knowledge_bases=knowledge_bases_for(settings, build_embed_model),
        local=local,
        redis=redis_async,
        redis_sync=redis_sync,
        accounts=accounts_on(),
        api_keys=ApiKeys(store),
    )


def create_app(settings: Settings, keys: list[str], start_local: bool = True) -> FastAPI:
    """Build the chat server.

    Args:
        settings: the loaded settings (provider, store, limits).
        keys: the accepted API keys (at least one).
        start_local: start or reuse the local model server at start when the provider is local.

    Returns:
        the FastAPI app; its state is made when it starts (the local server may take seconds).

    Raises:
        ValueError: ``keys`` is empty.
    """
    if not keys:
        raise ValueError("the chat server needs at least one API key")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.parley = state = server_state(settings, keys, start_local)
        try:
            yield
        finally:
            state.stop_servers()

    docs = settings.parley_api_docs  # off: no /docs or /redoc, and /openapi.json asks for the key
    app = FastAPI(
        title="Parley",
        summary="A private, local-first chat server: chat tokens and a websocket, saved conversations, "
        "and an OpenAI-compatible /v1.",
        version="1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.parley_api_max_body, larger=audio.LARGER_BODIES)
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["x-request-id"],
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts, www_redirect=False)
    app.add_middleware(RequestId)
    if not docs:

        @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_key)])
        def openapi() -> dict[str, Any]:
            """The OpenAPI description, for a client with a key (PARLEY_API_DOCS=1 serves it to all)."""
            return app.openapi()

    routers = (tokens, chat_socket, conversations, assistants, openai_compat, audio)
    for router in (r.router for r in routers):
        app.include_router(router)

    @app.get("/health", tags=["health"], response_model=Health)
    def health() -> Health:
        """Open to everyone: ``{"status": "ok", "provider", "model"}`` once the server has started."""
        state: ServerState = app.state.parley
        config = state.config()
        return Health(status="ok", provider=config.provider, model=config.model)

    return app
