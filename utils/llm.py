"""Build the llama-index LLM for the configured provider.

- ``groq``: ``llama_index.llms.groq.Groq`` with GROQ_API_KEY.
- ``openai``: ``llama_index.llms.openai.OpenAI`` with OPENAI_API_KEY.
- ``local`` and ``openai_like``: ``llama_index.llms.openai_like.OpenAILike`` on a base URL
  (the local llama-cpp-python server, or vLLM, Ollama, llama.cpp, LM Studio...).

All of them are subclasses of llama-index's ``OpenAI``, which ``OpenAIAgent`` requires.
Retries: llama-index's retry decorator does not retry a stream, so the only retrying layer for
streamed chat is the OpenAI SDK, with ``max_retries`` (2 retries, so at most 3 HTTP attempts).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai

from llama_index.llms.groq import Groq
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from settings import PROVIDER_LABELS, Settings

#: Context window in tokens assumed for an OpenAI-compatible server that does not say (OpenAILike's default).
DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW = 3900
#: Context window in tokens of Groq's models when LLM_CONTEXT_WINDOW is not set (Groq's docs: 128k for Llama 3.x).
DEFAULT_GROQ_CONTEXT_WINDOW = 131072
#: OpenAI's API root, used for model names llama-index does not know yet.
OPENAI_API_BASE = "https://api.openai.com/v1"
#: Context window in tokens assumed for such an OpenAI model when LLM_CONTEXT_WINDOW is not set.
DEFAULT_OPENAI_CONTEXT_WINDOW = 128000
#: SDK retries per request: 2 retries means at most 3 HTTP attempts.
SDK_MAX_RETRIES = 2


class ProviderConfigError(ValueError):
    """The chosen provider cannot be used as configured; ``str(error)`` says how to fix it."""


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """What is needed to build one LLM.

    Attributes:
        provider: ``local``, ``groq``, ``openai`` or ``openai_like``.
        model: model id sent to the provider.
        base_url: API root (``.../v1``); required for local and openai_like, optional otherwise.
        api_key: the key in plain text; kept out of ``repr``.
        temperature: sampling temperature, 0 to 2.
        max_tokens: most tokens in one reply.
        context_window: context window in tokens, or None for the provider's default.
        timeout: seconds before one HTTP request gives up.
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.7
    max_tokens: int = 512
    context_window: int | None = None
    timeout: float = 60.0

    def __repr__(self) -> str:
        return f"LLMConfig(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        """A short name for the user: ``Groq · llama-3.3-70b-versatile``."""
        return f"{PROVIDER_LABELS.get(self.provider, self.provider).split(' (')[0]} · {self.model}"


def config_from_settings(settings: Settings, local_base_url: str | None = None, local_context_window: int | None = None) -> LLMConfig:
    """Make the LLMConfig for the active provider of ``settings``.

    Args:
        settings: the loaded settings.
        local_base_url: base URL of the running local server (provider ``local`` only).
        local_context_window: its ``n_ctx`` in tokens.

    Raises:
        ProviderConfigError: a key or base URL that the provider needs is missing.
    """
    provider = settings.provider
    key = {"groq": settings.groq_api_key, "openai": settings.openai_api_key}.get(provider)
    if provider in ("groq", "openai") and key is None:
        name = "GROQ_API_KEY" if provider == "groq" else "OPENAI_API_KEY"
        raise ProviderConfigError(
            f"No API key for {PROVIDER_LABELS[provider]}. Set {name} in your environment or in "
            f".streamlit/secrets.toml, or unset LLM_PROVIDER to use the local model."
        )
    base_url = local_base_url if provider == "local" else settings.llm_base_url
    if provider == "openai_like" and not base_url:
        raise ProviderConfigError(
            "LLM_PROVIDER is openai_like but LLM_BASE_URL is not set. Set it to your server's API "
            "root, e.g. http://127.0.0.1:11434/v1 for Ollama."
        )
    context_window = local_context_window if provider == "local" else settings.llm_context_window
    return LLMConfig(
        provider=provider,
        model=settings.model,
        base_url=base_url,
        api_key=key.get_secret_value() if key is not None else None,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        context_window=context_window,
        timeout=settings.llm_timeout,
    )


def build_llm(config: LLMConfig) -> OpenAI:
    """Return the llama-index LLM for ``config``; no request is made.

    Raises:
        ProviderConfigError: unknown provider, or no base URL for local/openai_like.
    """
    common = dict(
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        timeout=config.timeout,
        max_retries=SDK_MAX_RETRIES,
    )
    if config.provider == "groq":
        extra = {"api_base": config.base_url} if config.base_url else {}
        return Groq(
            api_key=config.api_key,
            context_window=config.context_window or DEFAULT_GROQ_CONTEXT_WINDOW,
            **extra,
            **common,
        )
    if config.provider == "openai":
        extra = {"api_base": config.base_url} if config.base_url else {}
        llm = OpenAI(api_key=config.api_key, **extra, **common)
        try:
            llm.metadata  # llama-index knows only the model names in its table
            return llm
        except ValueError:  # a newer model: same API, so speak to it as OpenAI-compatible
            return OpenAILike(
                api_base=config.base_url or OPENAI_API_BASE,
                api_key=config.api_key,
                is_chat_model=True,
                is_function_calling_model=True,
                context_window=config.context_window or DEFAULT_OPENAI_CONTEXT_WINDOW,
                **common,
            )
    if config.provider in ("local", "openai_like"):
        if not config.base_url:
            raise ProviderConfigError(f"No base URL for provider {config.provider!r}.")
        return OpenAILike(
            api_base=config.base_url,
            api_key=config.api_key or "not-needed",
            is_chat_model=True,
            is_function_calling_model=True,
            context_window=config.context_window or DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW,
            **common,
        )
    raise ProviderConfigError(f"Unknown provider {config.provider!r}: use local, groq, openai or openai_like.")


def context_window_of(llm: OpenAI) -> int:
    """Return the LLM's context window in tokens, from llama-index's metadata for it.

    For OpenAI models it comes from llama-index's table of model names; an unknown name gives
    the OpenAILike default, 3900 tokens.
    """
    try:
        return llm.metadata.context_window
    except ValueError:
        return DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW


def mask_key(key: str | None) -> str:
    """Return a key shown safely: its first 4 and last 4 characters, e.g. ``gsk_…a1b2``."""
    if not key:
        return "(none)"
    return f"{key[:4]}…{key[-4:]}" if len(key) > 12 else "…" * 3


def explain_provider_error(exc: BaseException, config: LLMConfig) -> str:
    """Turn a provider failure into one sentence a user understands (never a traceback).

    Args:
        exc: the exception raised while calling the provider (OpenAI SDK error types, since
            every provider here speaks the OpenAI protocol; anything else is described generically).
        config: the provider in use, for its name, URL and masked key.

    Returns:
        the sentence; it never contains the key in clear.
    """
    where = config.label
    url = config.base_url or f"the {where} API"
    if isinstance(exc, openai.AuthenticationError):
        return f"{where} rejected the API key ({mask_key(config.api_key)}). Check that the key is right and still active."
    if isinstance(exc, openai.RateLimitError):
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        when = f"in {retry_after} s" if retry_after else "in a little while"
        return f"{where} is rate-limiting requests. Try again {when}."
    if isinstance(exc, openai.APITimeoutError):
        return f"{where} did not answer within {config.timeout:g} s. Retry may help."
    if isinstance(exc, openai.APIConnectionError):
        return f"Could not reach {url}. Check that the server is running and the address is right."
    if isinstance(exc, openai.BadRequestError) and "context" in str(exc).lower():
        return f"The conversation is too long for {where}'s context window. Start a new chat or shorten your message."
    if isinstance(exc, openai.InternalServerError):
        return f"{where} had a server error ({exc.status_code}). Retry may help."
    if isinstance(exc, openai.APIStatusError):
        return f"{where} refused the request (HTTP {exc.status_code}): {_short(exc.message)}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"The connection to {where} was cut off in the middle of the reply. Retry may help."
    return f"Something went wrong while asking {where}: {_short(str(exc)) or type(exc).__name__}."


def _short(text: str, limit: int = 200) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
