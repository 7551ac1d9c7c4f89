"""What the routes depend on: the server's shared state, the API-key check (which names the caller's
owner) and the chat-token check. Every keyed route gets the state of the key's owner (``State``):
their conversations, attachments and chat tokens only, so another owner's conversation is a 404."""

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
from model.api_keys import SERVICE_OWNER, ApiKeys
from model.assistant import Assistant
from model.store import LOCAL_OWNER, BaseConversationStore, StoreError
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
#: Owners' stores a server keeps open at most; past it the cache starts again.
MAX_OWNED_STORES = 1_000


@dataclass
class _Shared:
    """What every owner's view of one server's state shares and changes: the provider's model list
    (time it was asked, ``time.monotonic()`` seconds, and the ids), the local tool server once
    started, and each owner's store."""

    models: tuple[float, list[str]] = (0.0, [])
    tool_server: ToolServer | None = None
    owned: dict[str, BaseConversationStore] = field(default_factory=dict)


@dataclass
class ServerState:
    """Everything the routes share, made once at start.

    Attributes:
        settings: the settings the server started with.
        keys: the service keys (PARLEY_API_KEYS; never logged).
        store: the conversation store (the page's file, lock and backups); in a route's state, the
            caller's part of it (``for_owner``).
        tokens: the websocket's chat tokens (in a route's state, the caller's).
        slots: the bound on concurrent model calls.
        knowledge_bases: the page's knowledge bases (the embedding model loads on first use).
        local: the local model server when the provider is local, else None.
        redis: the asyncio Redis client when REDIS_URL is set (turns then go to the workers'
            queue), else None; ``redis_sync`` is its blocking twin (tokens, submitting turns).
        accounts: True when Streamlit's secrets turn sign-in on: the service keys then act as
            ``SERVICE_OWNER``, with data of its own; off, they act as ``LOCAL_OWNER`` (the page's).
        api_keys: the per-person keys, checked in the store on every request.
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
    accounts: bool = False
    api_keys: ApiKeys | None = None
    _shared: _Shared = field(default_factory=_Shared, repr=False)

    def for_owner(self, owner: str) -> ServerState:
        """This state as ``owner``'s routes see it: their part of the store (opened once per owner,
        sharing the connections) and their chat tokens; everything else shared.

        Raises:
            StoreError: ``owner`` is not a valid owner id.
        """
        owned = self._shared.owned
        store = owned.get(owner)
        if store is None:
            if len(owned) >= MAX_OWNED_STORES:
                owned.clear()
            store = owned[owner] = self.store.owned_by(owner)
        return replace(self, store=store, tokens=self.tokens.owned_by(owner))

    def tool_config(self, config: LLMConfig) -> LLMConfig:
        """``config`` able to take tools: for the bundled local model, with the API root of its second
        server in llama-cpp-python's function-calling format (started the first time, and again if it
        stopped); other providers take tools as they are.

        Raises:
            LocalServerError: the tool server did not start.
        """
        if config.provider != "local" or self.local is None:
            return config
        if self._shared.tool_server is None:
            settings = self.settings
            self._shared.tool_server = ToolServer(
                settings.local_model_path,
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
        return replace(config, tools_base_url=self._shared.tool_server.base_url())

    def stop_servers(self) -> None:
        """Stop the local model servers this state started."""
        for server in (self.local, self._shared.tool_server):
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
        stamp, models = self._shared.models
        if time.monotonic() - stamp > MODELS_CACHE_SECONDS:
            config = self.config()
            listed = models_of(config)  # a provider that is down or refuses lists none
            models = [config.model, *[m for m in listed if m != config.model]]
            self._shared.models = (time.monotonic(), models)
        return models


def get_state(request: Request) -> ServerState:
    """The server's ServerState (set at start on ``app.state.parley``), every owner's."""
    state: ServerState = request.app.state.parley
    return state


_bearer = HTTPBearer(
    auto_error=False, description="A key from PARLEY_API_KEYS (or the one printed at start), or a personal key."
)


@dataclass(frozen=True)
class Caller:
    """Who sent a keyed request: the owner whose data it reaches, and the per-person key's id (None
    for a service key)."""

    owner: str
    key_id: str | None = None


def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """Accept the request only with ``Authorization: Bearer <key>`` for a service key or a working
    per-person key, and say whose it is.

    A service key is compared in constant time with every one (``ServerState.keys``) and acts as
    ``SERVICE_OWNER`` with accounts on, else ``LOCAL_OWNER``. A per-person key is read from the store
    on every request (``model.api_keys.ApiKeys.owner_of``), so a revoked one is refused at once.

    Raises:
        APIError: 401 when the header is missing or the key is not accepted; 503 when the store
            cannot be read to check a per-person key.
    """
    if credentials is None or not credentials.credentials:
        raise APIError(401, "Send your Parley API key as 'Authorization: Bearer <key>'.", "missing_api_key")
    state = get_state(request)
    given = credentials.credentials.encode("utf-8")
    accepted = False
    for key in state.keys:
        accepted |= hmac.compare_digest(given, key.encode("utf-8"))
    if accepted:
        return Caller(SERVICE_OWNER if state.accounts else LOCAL_OWNER)
    personal = None
    if state.api_keys is not None and given.isascii():
        try:
            personal = state.api_keys.owner_of(credentials.credentials)
        except StoreError as exc:
            raise APIError(503, f"Your key could not be checked just now: {exc}", "store_unavailable") from exc
    if personal is None:
        raise APIError(401, "That API key is not valid for this Parley server.", "invalid_api_key")
    return Caller(personal.owner, personal.id)


def caller_state(request: Request, caller: Annotated[Caller, Depends(require_key)]) -> ServerState:
    """The state of the key's owner (``ServerState.for_owner``).

    Raises:
        APIError: 401 without a working key (``require_key``).
    """
    return get_state(request).for_owner(caller.owner)


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


State = Annotated[ServerState, Depends(caller_state)]
