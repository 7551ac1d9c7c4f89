"""Build the llama-index LLM for the configured provider.

- ``groq``: ``llama_index.llms.groq.Groq`` with GROQ_API_KEY.
- ``openai``: ``llama_index.llms.openai.OpenAI`` with OPENAI_API_KEY.
- ``local`` and ``openai_like``: ``llama_index.llms.openai_like.OpenAILike`` on a base URL
  (the local llama-cpp-python server, or vLLM, Ollama, llama.cpp, LM Studio...).

All of them are subclasses of llama-index's ``OpenAI``, which ``OpenAIAgent`` requires.
Retries: llama-index's retry decorator does not retry a stream and the OpenAI SDK's retries are
turned off (``max_retries=0``), so the one retrying layer is Parley's controller, which follows
``retry_delay``: at most ``MAX_ATTEMPTS`` HTTP attempts per message.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import openai
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen, MessageRole
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import LLM
from llama_index.llms.groq import Groq
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from settings import PROVIDER_LABELS, Settings

#: Context window in tokens assumed for an OpenAI-compatible server that does not say (OpenAILike's default).
DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW = 3900
#: Context window in tokens of Groq's models when LLM_CONTEXT_WINDOW is not set (Groq's docs: 128k for Llama 3.x).
DEFAULT_GROQ_CONTEXT_WINDOW = 131072
#: Groq's OpenAI-compatible API root (llama_index.llms.groq.Groq's default).
GROQ_API_BASE = "https://api.groq.com/openai/v1"
#: OpenAI's API root, used for model names llama-index does not know yet.
OPENAI_API_BASE = "https://api.openai.com/v1"
#: Context window in tokens assumed for such an OpenAI model when LLM_CONTEXT_WINDOW is not set.
DEFAULT_OPENAI_CONTEXT_WINDOW = 128000
#: SDK retries per request: none, so that Parley's controller is the only layer that retries.
SDK_MAX_RETRIES = 0
#: Most HTTP attempts for one message, all layers together.
MAX_ATTEMPTS = 3
#: A rate limit whose retry-after is at most this many seconds is retried once, automatically.
SHORT_RATE_LIMIT_WAIT = 10.0
#: Pause before retrying a connection failure or server error, in seconds, by attempt number.
BACKOFF_SECONDS = (0.5, 1.0)


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
        system_prompt: the system message sent first, or None.
        stop: sequences at which the model stops generating (OpenAI's ``stop``), or empty.
        json_mode: True asks for a JSON object (OpenAI's ``response_format={"type": "json_object"}``).
        tools_base_url: provider ``local`` only: the API root of the server that gives this model
            tool calls (llama-cpp-python's ``chatml-function-calling`` format), asked when tools are
            offered (``LocalToolLLM``); None to send tools to ``base_url`` as they are.
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.7
    max_tokens: int = 512
    context_window: int | None = None
    timeout: float = 60.0
    system_prompt: str | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False
    tools_base_url: str | None = None

    def __repr__(self) -> str:
        return f"LLMConfig(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        """A short name for the user: ``Groq · llama-3.3-70b-versatile``."""
        return f"{PROVIDER_LABELS.get(self.provider, self.provider).split(' (')[0]} · {self.model}"


def config_from_settings(
    settings: Settings,
    local_base_url: str | None = None,
    local_context_window: int | None = None,
    system_prompt: str | None = None,
) -> LLMConfig:
    """Make the LLMConfig for the active provider of ``settings``.

    Args:
        settings: the loaded settings.
        local_base_url: base URL of the running local server (provider ``local`` only).
        local_context_window: its ``n_ctx`` in tokens.

    A missing key or base URL is not an error here: ``config_problem`` tells, and ``build_llm``
    refuses, so that the page can still show the conversation and say how to fix it.
    """
    provider = settings.provider
    key = {"groq": settings.groq_api_key, "openai": settings.openai_api_key}.get(provider)
    base_url = local_base_url if provider == "local" else settings.llm_base_url
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
        system_prompt=system_prompt,
    )


def config_problem(config: LLMConfig) -> str | None:
    """Return why ``config`` cannot be used (missing key or base URL), for the user, or None."""
    if config.provider in ("groq", "openai") and not config.api_key:
        name = "GROQ_API_KEY" if config.provider == "groq" else "OPENAI_API_KEY"
        return (
            f"No API key for {PROVIDER_LABELS[config.provider]}. Enter one in the sidebar (kept in this "
            f"tab only), or set {name} in your environment or in .streamlit/secrets.toml and restart."
        )
    if config.provider == "openai_like" and not config.base_url:
        return (
            "No base URL for the OpenAI-compatible server. Enter it in the sidebar, or set LLM_BASE_URL, "
            "e.g. http://127.0.0.1:11434/v1 for Ollama."
        )
    if config.provider not in PROVIDER_LABELS:
        return f"Unknown provider {config.provider!r}: use local, groq, openai or openai_like."
    return None


_opened = threading.local()  # per thread: the provider HTTP responses it opened (``_track``)


def _track(response: httpx.Response) -> None:
    """httpx response hook: remember ``response`` in the thread that made the request (which is
    the thread that reads a streamed reply), forgetting the ones already closed."""
    responses = getattr(_opened, "responses", None)
    if responses is None:
        responses = _opened.responses = []
    responses[:] = [r for r in responses if not r.is_closed]
    responses.append(response)


def close_open_responses() -> int:
    """Close every provider HTTP response this thread opened and has not closed yet.

    Used when the user stops a streamed reply: closing the connection is what makes the server
    stop generating (llama-cpp-python's server logs "Disconnected from client"). Closing the
    generators above the openai SDK's stream is not enough: the SDK's ``Stream`` refers to itself
    (a reference cycle), so its response stays open until the garbage collector finds it.

    Returns:
        the number of responses closed.
    """
    responses = getattr(_opened, "responses", [])
    open_ones = [r for r in responses if not r.is_closed]
    for response in open_ones:
        response.close()
    responses.clear()
    return len(open_ones)


def _http_client() -> httpx.Client:
    """An HTTP client like the openai SDK's default (same connection limits, redirects followed),
    whose responses are tracked per thread (``close_open_responses``)."""
    return httpx.Client(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        follow_redirects=True,
        event_hooks={"response": [_track]},
    )


def build_llm(config: LLMConfig) -> OpenAI:
    """Return the llama-index LLM for ``config``; no request is made.

    LLMs are kept per config (``_cached_llm``) and shared: each holds an OpenAI SDK client whose
    creation costs ~20 ms (it loads the CA bundle), which a new LLM per turn added to the time to
    first token. The LLM and its client are safe to share between threads.

    Raises:
        ProviderConfigError: ``config_problem`` found something missing (its sentence is the message).
    """
    problem = config_problem(config)
    if problem is not None:
        raise ProviderConfigError(problem)
    return _cached_llm(config)


@functools.lru_cache(maxsize=64)
def _cached_llm(config: LLMConfig) -> OpenAI:
    """The llama-index LLM for a usable ``config`` (``build_llm`` checked it), made once per config."""
    extra = request_options(config)
    if config.provider == "groq":
        return Groq(
            model=config.model,
            api_key=config.api_key,
            api_base=config.base_url or GROQ_API_BASE,
            context_window=config.context_window or DEFAULT_GROQ_CONTEXT_WINDOW,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=config.timeout,
            max_retries=SDK_MAX_RETRIES,
            additional_kwargs=extra,
            http_client=_http_client(),
        )
    if config.provider == "openai":
        llm = OpenAI(
            model=config.model,
            api_key=config.api_key,
            api_base=config.base_url,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=config.timeout,
            max_retries=SDK_MAX_RETRIES,
            additional_kwargs=extra,
            http_client=_http_client(),
        )
        try:
            llm.metadata  # noqa: B018 (llama-index knows only the model names in its table; raises otherwise)
            return llm
        except ValueError:  # a newer model: same API, so speak to it as OpenAI-compatible
            return _openai_like(config, config.base_url or OPENAI_API_BASE, DEFAULT_OPENAI_CONTEXT_WINDOW)
    if config.provider == "local":  # llama-cpp-python's server: see LocalToolLLM
        llm = LocalToolLLM(**_openai_like_fields(config, config.base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW))
        if config.tools_base_url:
            tool_config = replace(config, base_url=config.tools_base_url, tools_base_url=None, json_mode=False)
            llm._tool_llm = _openai_like(tool_config, config.tools_base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW)
        return llm
    if config.provider in ("local", "openai_like"):
        return _openai_like(config, config.base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW)
    raise AssertionError("unreachable: config_problem rejects unknown providers")


def request_options(config: LLMConfig) -> dict[str, object]:
    """The chat-completion fields beyond model, messages, temperature and max tokens that ``config``
    asks for: ``stop`` (a list of strings) and ``response_format`` (JSON mode), per OpenAI's API."""
    options: dict[str, object] = {}
    if config.stop:
        options["stop"] = list(config.stop)
    if config.json_mode:
        options["response_format"] = {"type": "json_object"}
    return options


def _openai_like(config: LLMConfig, base_url: str | None, default_context_window: int) -> OpenAILike:
    """llama-index's OpenAILike for ``config`` at ``base_url``, as a chat and function-calling model.

    Args:
        config: the model, key and limits.
        base_url: the API root (``.../v1``).
        default_context_window: tokens assumed when ``config.context_window`` is None.
    """
    return OpenAILike(**_openai_like_fields(config, base_url, default_context_window))


def _openai_like_fields(config: LLMConfig, base_url: str | None, default_context_window: int) -> dict[str, Any]:
    """The keyword arguments of OpenAILike for ``config`` at ``base_url`` (see ``_openai_like``)."""
    return dict(
        model=config.model,
        api_base=base_url,
        api_key=config.api_key or "not-needed",
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=config.context_window or default_context_window,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        timeout=config.timeout,
        max_retries=SDK_MAX_RETRIES,
        additional_kwargs=request_options(config),
        http_client=_http_client(),
    )


class LocalToolLLM(OpenAILike):
    """The local model (llama-cpp-python's server), with tool calls from a second server of the same
    model when ``_tool_llm`` is set. Its server also refuses an assistant message without text
    content (HTTP 500), which OpenAI's protocol allows for tool calls, so the history's tool calls
    and results are always sent as text (``_as_text``).

    llama-cpp-python gives a ChatML model tool calls with its ``chatml-function-calling`` chat
    format, which has these quirks (seen with SmolLM2-135M): a streamed request with tools returns
    no chunks; when the model chooses to answer in words, the reply is empty (the format's grammar
    then allows only another call or the end); tool results (role ``tool``) are left out of its
    prompt; and an assistant message needs text content. So a request that offers tools is sent
    without streaming to the tool server; its tool calls come back as one chunk, and an empty
    reply is answered again by the plain server, streamed, without tools. Tool calls and results
    in the history are sent as text (``_as_text``), which both servers show the model.

    Attributes:
        _tool_llm: the OpenAILike at ``LLMConfig.tools_base_url``, or None (tools are then sent to
            the model's own server, whose chat template may ignore them).
    """

    _tool_llm: OpenAILike | None = PrivateAttr(default=None)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the reply to ``messages``; with ``tools`` in ``kwargs``, the tool server decides
        first (see the class docstring).

        Raises:
            openai.OpenAIError: the server failed (raised while iterating).
        """
        plain = {k: v for k, v in kwargs.items() if k not in ("tools", "tool_choice")}
        sent = _as_text(messages)
        if not kwargs.get("tools") or self._tool_llm is None:
            return super().stream_chat(sent, **plain)
        return self._tools_then_stream(sent, kwargs, plain)

    def _tools_then_stream(self, sent: list[ChatMessage], kwargs: dict, plain: dict) -> ChatResponseGen:
        assert self._tool_llm is not None
        reply = self._tool_llm.chat(sent, **kwargs)
        if reply.message.additional_kwargs.get("tool_calls"):
            yield ChatResponse(message=reply.message, delta="", raw=reply.raw)
            return
        yield from super().stream_chat(sent, **plain)


def _as_text(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with each tool call and result as a user message ``Result of name(arguments): result``."""
    calls: dict[str, tuple[str, str]] = {}
    sent: list[ChatMessage] = []
    for message in messages:
        tool_calls = message.additional_kwargs.get("tool_calls")
        if message.role == MessageRole.ASSISTANT and tool_calls:
            for call in tool_calls:
                call = call if isinstance(call, dict) else call.model_dump()
                calls[call.get("id", "")] = (call["function"]["name"], call["function"].get("arguments") or "")
            if message.content:
                sent.append(ChatMessage(role=MessageRole.ASSISTANT, content=message.content))
        elif message.role == MessageRole.TOOL:
            name, arguments = calls.get(message.additional_kwargs.get("tool_call_id", ""), ("a tool", ""))
            sent.append(ChatMessage(role=MessageRole.USER, content=f"Result of {name}({arguments}): {message.content}"))
        else:
            sent.append(message)
    return sent


def context_window_of(llm: LLM) -> int:
    """Return the LLM's context window in tokens, from llama-index's metadata for it.

    For OpenAI models it comes from llama-index's table of model names; an unknown name gives
    the OpenAILike default, 3900 tokens.
    """
    try:
        return llm.metadata.context_window
    except ValueError:
        return DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW


def mask_key(key: str | None) -> str:
    """Return a key shown safely: its first 4 and last 4 characters joined by "…"."""
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
    if isinstance(exc, ProviderConfigError):
        return str(exc)
    where = config.label
    url = config.base_url or f"the {where} API"
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
        return f"Could not reach {url}. Check that the server is running and the address is right."
    if isinstance(exc, openai.BadRequestError) and "context" in str(exc).lower():
        return f"The conversation is too long for {where}'s context window. Start a new chat or shorten your message."
    if isinstance(exc, openai.InternalServerError):
        return f"{where} had a server error ({exc.status_code}). Retry may help."
    if isinstance(exc, openai.APIStatusError):
        return f"{where} refused the request (HTTP {exc.status_code}): {_short(exc.message)}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout)):
        return f"The connection to {where} was cut off in the middle of the reply. Retry may help."
    return f"Something went wrong while asking {where}: {_short(str(exc)) or type(exc).__name__}."


def _short(text: str, limit: int = 200) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def retry_delay(exc: BaseException, attempt: int) -> float | None:
    """Decide whether a failed request that produced no text yet is tried again.

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
    if isinstance(exc, (openai.APIConnectionError, openai.InternalServerError)):
        return BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
    return None


def is_fallback_worthy(exc: BaseException) -> bool:
    """True for failures where answering with the local model instead makes sense: connection or 5xx."""
    return isinstance(exc, (openai.APIConnectionError, openai.InternalServerError)) and not isinstance(
        exc, openai.APITimeoutError
    )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """The retry-after header of an HTTP error, in seconds, or None if absent or not a number."""
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def list_models(base_url: str | None, api_key: str | None, timeout: float = 3.0) -> list[str]:
    """Return the model ids from ``GET {base_url}/models`` (OpenAI protocol), sorted.

    Args:
        base_url: the API root, or None for OpenAI's.
        api_key: the key, or None for servers that need none.
        timeout: seconds to wait.

    Raises:
        openai.OpenAIError: the server did not answer, or refused (e.g. 401).
    """
    client = openai.OpenAI(
        base_url=base_url or OPENAI_API_BASE, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
    )
    return sorted(model.id for model in client.models.list())


def check_provider(config: LLMConfig) -> str | None:
    """Ask the provider's ``/models`` endpoint whether it answers; None when it does, else why not."""
    try:
        list_models(config.base_url or default_base_url(config.provider), config.api_key, timeout=5.0)
        return None
    except openai.OpenAIError as exc:
        return explain_provider_error(exc, config)


def default_base_url(provider: str) -> str | None:
    """The API root of a cloud provider (groq, openai) when no base URL is configured, else None."""
    return {"groq": GROQ_API_BASE, "openai": OPENAI_API_BASE}.get(provider)
