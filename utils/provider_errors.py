"""Provider failures for people, and the retry policy.

Every provider here speaks the OpenAI protocol, so failures arrive as the openai SDK's error types.
``explain_provider_error`` turns one into a sentence (never a traceback, never a key in clear);
``retry_delay`` decides whether a failed request is tried again. llama-index's retry decorator does
not retry a stream and the SDK's own retries are off (``SDK_MAX_RETRIES``), so the turn runner
(``controller.turn``) is the one layer that retries: at most ``MAX_ATTEMPTS`` HTTP attempts per message.
"""

from __future__ import annotations

import httpx
import openai

from utils.providers import LLMConfig

#: SDK retries per request: none, so that the turn runner is the only layer that retries.
SDK_MAX_RETRIES = 0
#: Most HTTP attempts for one message, all layers together.
MAX_ATTEMPTS = 3
#: A rate limit whose retry-after is at most this many seconds is retried once, automatically.
SHORT_RATE_LIMIT_WAIT = 10.0
#: Pause before retrying a connection failure or server error, in seconds, by attempt number.
BACKOFF_SECONDS = (0.5, 1.0)


class ProviderConfigError(ValueError):
    """The chosen provider cannot be used as configured; ``str(error)`` says how to fix it."""


def mask_key(key: str | None) -> str:
    """A key shown safely: its first 4 and last 4 characters joined by "…"."""
    if not key:
        return "(none)"
    return f"{key[:4]}…{key[-4:]}" if len(key) > 12 else "…" * 3


def explain_provider_error(exc: BaseException, config: LLMConfig) -> str:
    """Turn a provider failure into one sentence a user understands.

    Args:
        exc: what calling the provider raised.
        config: the provider in use, for its name, URL and masked key.

    Returns:
        the sentence; it never contains the key in clear.
    """
    if isinstance(exc, ProviderConfigError):
        return str(exc)
    where = config.label
    if isinstance(exc, openai.AuthenticationError):
        return (
            f"{where} rejected the API key ({mask_key(config.api_key)}). Check that the key is right and still active."
        )
    if isinstance(exc, openai.RateLimitError):
        retry_after = _retry_after(exc)
        when = f"in {retry_after:g} s" if retry_after is not None else "in a little while"
        return f"{where} is rate-limiting requests. Try again {when}."
    if isinstance(exc, openai.APITimeoutError):
        return f"{where} did not answer within {config.timeout:g} s. Retry may help."
    if isinstance(exc, openai.APIConnectionError):
        url = config.base_url or f"the {where} API"
        return f"Could not reach {url}. Check that the server is running and the address is right."
    if isinstance(exc, openai.BadRequestError) and "context" in str(exc).lower():
        return f"The conversation is too long for {where}'s context window. Start a new chat or shorten your message."
    if isinstance(exc, openai.InternalServerError):
        return f"{where} had a server error ({exc.status_code}). Retry may help."
    if isinstance(exc, openai.APIStatusError):
        return f"{where} refused the request (HTTP {exc.status_code}): {_short(exc.message)}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.ReadTimeout):
        return f"The connection to {where} was cut off in the middle of the reply. Retry may help."
    return f"Something went wrong while asking {where}: {_short(str(exc)) or type(exc).__name__}."


def _short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def retry_delay(exc: BaseException, attempt: int) -> float | None:
    """Whether a failed request that produced no text yet is tried again.

    Args:
        exc: what the attempt raised.
        attempt: how many attempts were made so far (1 for the first).

    Returns:
        seconds to wait before the next attempt, or None to give up. Connection failures and
        server errors (5xx) are retried up to MAX_ATTEMPTS with BACKOFF_SECONDS; a rate limit (429)
        is retried once when its retry-after is at most SHORT_RATE_LIMIT_WAIT seconds; a timeout,
        a rejected key or a bad request is not retried.
    """
    if attempt >= MAX_ATTEMPTS:
        return None
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc)
        return wait if attempt == 1 and wait is not None and wait <= SHORT_RATE_LIMIT_WAIT else None
    if isinstance(exc, openai.APITimeoutError):
        return None
    if isinstance(exc, openai.APIConnectionError | openai.InternalServerError):
        return BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
    return None


def is_fallback_worthy(exc: BaseException) -> bool:
    """True for failures where answering with the local model instead makes sense: connection or 5xx."""
    return isinstance(exc, openai.APIConnectionError | openai.InternalServerError) and not isinstance(
        exc, openai.APITimeoutError
    )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """The retry-after header of an HTTP error, in seconds, or None if absent or not a number."""
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
