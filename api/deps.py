"""What the routes depend on: the server's shared state, the API-key check and the chat-token check."""

from __future__ import annotations

import hmac
import time
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import APIError
from api.streaming import ModelSlots
from controller.assistants import AgentSetup
from controller.chat_tokens import ChatTokens, TokenError
from controller.engines import AgentEngine
from controller.web_search import WebSearch
from model.assistant import Assistant
from model.store import BaseConversationStore
from settings import Settings
from utils.knowledge_bases import KnowledgeBaseStore
from utils.local_server import LOCAL_MODEL_ALIAS, LocalServer, ToolServer
from utils.model_list import models_of
from utils.providers import LLMConfig, LocalEndpoint, resolve_config

#: Seconds the provider's model list is kept before asking its /models again.
MODELS_CACHE_SECONDS = 30.0
#: Prefix of the model ids that answer from a knowledge base (``kb:<name>``).
ASSISTANT_PREFIX = "assistant:"
KB_PREFIX = "kb:"


@dataclass
class ServerState:
    """Everything the routes share, made once at start.

    Attributes:
        settings: the settings the server started with.
        keys: the accepted API keys (never logged).
        store: the conversation store (the page's file, lock and backups).
        tokens: the websocket's chat tokens.
        slots: the bound on concurrent model calls.
        knowledge_bases: the page's knowledge bases (the embedding model loads on first use).
        local: the local model server when the provider is local, else None.
        redis: the asyncio Redis client when REDIS_URL is set (turns then go to the workers'
            queue), else None; ``redis_sync`` is its blocking twin (tokens, submitting turns).
    """

    settings: Settings
    keys: list[str]
    store: BaseConversationStore
    tokens: ChatTokens
    slots: ModelSlots
    knowledge_bases: KnowledgeBaseStore
    local: LocalServer | None = None
    redis: Any = None
    redis_sync: Any = None
    _models: tuple[float, list[str]] = field(default=(0.0, []), repr=False)
    _tool_server: ToolServer | None = field(default=None, repr=False)

    def tool_config(self, config: LLMConfig) -> LLMConfig:
        """``config`` able to take tools: for the bundled local model, with the API root of its second
        server in llama-cpp-python's function-calling format (started the first time, and again if it
        stopped); other providers take tools as they are.

        Raises:
            LocalServerError: the tool server did not start.
        """
        if config.provider != "local" or self.local is None:
            return config
        if self._tool_server is None:
            settings = self.settings
            self._tool_server = ToolServer(
                settings.local_model_path,
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
        return replace(config, tools_base_url=self._tool_server.base_url())

    def stop_servers(self) -> None:
        """Stop the local model servers this state started."""
        for server in (self.local, self._tool_server):
            if server is not None:
                server.stop()

    def web_search(self) -> WebSearch:
        """The web search the settings configure, ranking with the knowledge bases' embedding model.

        Raises:
            APIError: 400 when PARLEY_FETCH_ALLOW cannot be read.
        """
        try:
            return WebSearch.from_settings(self.settings, lambda: self.knowledge_bases.embed_model)
        except ValueError as exc:
            raise APIError(400, f"Web search is off: PARLEY_FETCH_ALLOW could not be read ({exc}).") from exc

    def assistant(self, assistant_id: str) -> Assistant:
        """The assistant ``assistant_id`` (built in or stored).

        Raises:
            APIError: 404 when there is none.
            StoreError: the store cannot be read.
        """
        found = self.store.assistant(assistant_id)
        if found is None:
            raise APIError(
                404, f"There is no assistant {assistant_id!r}; GET /assistants lists them.", "assistant_not_found"
            )
        return found

    def agent(self, assistant_id: str | None, web: WebSearch | None = None) -> tuple[AgentEngine, tuple[str, ...]]:
        """The memory page's agent engine and the tools to offer: the settings' model without tools,
        or ``assistant_id``'s instructions, model and tools (``controller.assistants``). An assistant
        deleted since answers as Parley.

        Raises:
            StoreError: the store cannot be read.
            LocalServerError: the local model's tool server did not start.
        """
        local = self.local
        endpoint = LocalEndpoint(local.base_url, local.context_window, LOCAL_MODEL_ALIAS) if local else None
        setup = AgentSetup(self.settings, self.store, self.knowledge_bases, endpoint, self.tool_config)
        return setup.agent(self.config(), assistant_id, web)

    def config(self, model: str | None = None) -> LLMConfig:
        """The LLMConfig of the configured provider (with ``model`` instead of the configured one)."""
        local = self.local
        endpoint = LocalEndpoint(local.base_url, local.context_window, LOCAL_MODEL_ALIAS) if local else None
        config = resolve_config(self.settings, local=endpoint)
        return replace(config, model=model) if model else config

    def provider_models(self) -> list[str]:
        """The configured model first, then the others the provider's /models lists (asked at most
        every MODELS_CACHE_SECONDS; a provider that does not answer lists only the configured one)."""
        stamp, models = self._models
        if time.monotonic() - stamp > MODELS_CACHE_SECONDS:
            config = self.config()
            listed = models_of(config)  # a provider that is down or refuses lists none
            models = [config.model, *[m for m in listed if m != config.model]]
            self._models = (time.monotonic(), models)
        return models


def get_state(request: Request) -> ServerState:
    """The server's ServerState (set at start on ``app.state.parley``)."""
    state: ServerState = request.app.state.parley
    return state


_bearer = HTTPBearer(auto_error=False, description="A key from PARLEY_API_KEYS (or the one printed at start).")


def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Accept the request only with ``Authorization: Bearer <key>`` for one of the server's keys.

    The key is compared in constant time with every accepted key.

    Raises:
        APIError: 401 when the header is missing or the key is not accepted.
    """
    if credentials is None or not credentials.credentials:
        raise APIError(401, "Send your Parley API key as 'Authorization: Bearer <key>'.", "missing_api_key")
    given = credentials.credentials.encode("utf-8")
    accepted = False
    for key in get_state(request).keys:
        accepted |= hmac.compare_digest(given, key.encode("utf-8"))
    if not accepted:
        raise APIError(401, "That API key is not valid for this Parley server.", "invalid_api_key")


def token_name(state: ServerState, token: str) -> str:
    """The conversation name of the live chat token ``token``.

    Raises:
        APIError: 401 when the token is unknown or expired.
    """
    try:
        return state.tokens.get(token).name
    except TokenError as exc:
        raise APIError(401, str(exc), "invalid_session_token") from exc


def check_name(name: str) -> str:
    """Return a conversation name (trimmed) that the API accepts.

    Raises:
        APIError: 400 for a blank name, or one holding ``/``, ``\\``, ``..`` or control characters
            (they cannot travel in a URL path or a file name safely).
    """
    cleaned = name.strip()
    if not cleaned:
        raise APIError(400, "Please give the conversation a name.", "invalid_name")
    if len(cleaned) > 200:
        raise APIError(400, "Conversation names are at most 200 characters long.", "invalid_name")
    if "/" in cleaned or "\\" in cleaned or ".." in cleaned:
        raise APIError(400, "Conversation names cannot contain '/', '\\' or '..'.", "invalid_name")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in cleaned):
        raise APIError(400, "Conversation names cannot contain control characters.", "invalid_name")
    return cleaned


State = Annotated[ServerState, Depends(get_state)]
