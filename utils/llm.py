"""The LLM factory and its cache: the llama-index LLM for an ``LLMConfig``.

- ``groq``: ``llama_index.llms.groq.Groq``;
- ``openai``: ``llama_index.llms.openai.OpenAI`` (a model name llama-index does not know yet is
  spoken to through OpenAILike at OpenAI's URL);
- ``openai_like``: ``llama_index.llms.openai_like.OpenAILike`` on its base URL;
- ``local``: ``LocalToolLLM``, an OpenAILike for the bundled model's llama-cpp-python server that
  takes tool calls from a second server of the same model.

All of them are subclasses of llama-index's ``OpenAI``, which ``OpenAIAgent`` requires. Their HTTP
clients track responses for Stop (``utils.response_tracking``) and never retry by themselves
(``utils.provider_errors``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen, MessageRole
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import LLM
from llama_index.llms.groq import Groq
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from utils.provider_errors import SDK_MAX_RETRIES, ProviderConfigError
from utils.providers import GROQ_API_BASE, OPENAI_API_BASE, LLMConfig, config_problem
from utils.response_tracking import tracked_http_client

#: Context window in tokens assumed for an OpenAI-compatible server that does not say (OpenAILike's default).
DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW = 3900
#: Context window in tokens of Groq's models when LLM_CONTEXT_WINDOW is not set (Groq's docs: 128k for Llama 3.x).
DEFAULT_GROQ_CONTEXT_WINDOW = 131072
#: Context window in tokens assumed for an OpenAI model llama-index does not know, when LLM_CONTEXT_WINDOW is not set.
DEFAULT_OPENAI_CONTEXT_WINDOW = 128000


def build_llm(config: LLMConfig) -> OpenAI:
    """The llama-index LLM for ``config``; no request is made.

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


def try_build_llm(config: LLMConfig) -> OpenAI | None:
    """``build_llm(config)``, or None when the config is missing a key or base URL (no request is made)."""
    try:
        return build_llm(config)
    except ProviderConfigError:
        return None


@functools.lru_cache(maxsize=64)
def _cached_llm(config: LLMConfig) -> OpenAI:
    """The llama-index LLM for a usable ``config`` (``build_llm`` checked it), made once per config."""
    if config.provider == "groq":
        groq: OpenAI = Groq(
            **_common_fields(config),
            api_base=config.base_url or GROQ_API_BASE,
            context_window=config.context_window or DEFAULT_GROQ_CONTEXT_WINDOW,
        )
        return groq
    if config.provider == "openai":
        llm = OpenAI(**_common_fields(config), api_base=config.base_url)
        try:
            llm.metadata  # noqa: B018 (llama-index knows only the model names in its table; raises otherwise)
            return llm
        except ValueError:  # a newer model: same API, so speak to it as OpenAI-compatible
            newer: OpenAI = _openai_like(config, config.base_url or OPENAI_API_BASE, DEFAULT_OPENAI_CONTEXT_WINDOW)
            return newer
    if config.provider == "local":
        local = LocalToolLLM(**_openai_like_fields(config, config.base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW))
        if config.tools_base_url:
            tool_config = replace(config, base_url=config.tools_base_url, tools_base_url=None, json_mode=False)
            local.tool_llm = _openai_like(tool_config, config.tools_base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW)
        return local
    compatible: OpenAI = _openai_like(config, config.base_url, DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW)
    return compatible


def request_options(config: LLMConfig) -> dict[str, object]:
    """The chat-completion fields beyond model, messages, temperature and max tokens that ``config``
    asks for: ``stop`` (a list of strings) and ``response_format`` (JSON mode), per OpenAI's API."""
    options: dict[str, object] = {}
    if config.stop:
        options["stop"] = list(config.stop)
    if config.json_mode:
        options["response_format"] = {"type": "json_object"}
    return options


def _common_fields(config: LLMConfig) -> dict[str, Any]:
    """The keyword arguments every llama-index OpenAI-type LLM takes for ``config``."""
    return {
        "model": config.model,
        "api_key": config.api_key or "not-needed",
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "timeout": config.timeout,
        "max_retries": SDK_MAX_RETRIES,
        "additional_kwargs": request_options(config),
        "http_client": tracked_http_client(),
    }


def _openai_like(config: LLMConfig, base_url: str | None, default_context_window: int) -> OpenAILike:
    """llama-index's OpenAILike for ``config`` at ``base_url``, as a chat and function-calling model."""
    return OpenAILike(**_openai_like_fields(config, base_url, default_context_window))


def _openai_like_fields(config: LLMConfig, base_url: str | None, default_context_window: int) -> dict[str, Any]:
    """The keyword arguments of OpenAILike for ``config`` at ``base_url`` (``context_window`` tokens
    when the config says none)."""
    return {
        **_common_fields(config),
        "api_base": base_url,
        "is_chat_model": True,
        "is_function_calling_model": True,
        "context_window": config.context_window or default_context_window,
    }


class LocalToolLLM(OpenAILike):
    """The local model (llama-cpp-python's server), with tool calls from a second server of the same
    model when ``tool_llm`` is set.

    llama-cpp-python gives a ChatML model tool calls with its ``chatml-function-calling`` chat
    format, which has these quirks (seen with SmolLM2-135M): a streamed request with tools returns
    no chunks; when the model chooses to answer in words, the reply is empty (the format's grammar
    then allows only another call or the end); tool results (role ``tool``) are left out of its
    prompt; and the server answers HTTP 500 to an assistant message without text content (which
    OpenAI's protocol allows for tool calls). So a request that offers tools is sent without
    streaming to the tool server; its tool calls come back as one chunk, and an empty reply is
    answered again by the plain server, streamed, without tools. Tool calls and results in the
    history are sent as text (``calls_as_text``), which both servers show the model.

    Attributes:
        tool_llm: the OpenAILike at ``LLMConfig.tools_base_url``, or None (tools are then sent to
            the model's own server, whose chat template may ignore them).
    """

    _tool_llm: OpenAILike | None = PrivateAttr(default=None)

    @property
    def tool_llm(self) -> OpenAILike | None:
        """The OpenAILike of the tool server, or None."""
        return self._tool_llm

    @tool_llm.setter
    def tool_llm(self, llm: OpenAILike | None) -> None:
        self._tool_llm = llm

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the reply to ``messages``; with ``tools`` in ``kwargs``, the tool server decides
        first (see the class docstring).

        Raises:
            openai.OpenAIError: the server failed (raised while iterating).
        """
        plain = {k: v for k, v in kwargs.items() if k not in ("tools", "tool_choice")}
        sent = calls_as_text(messages)
        if not kwargs.get("tools") or self._tool_llm is None:
            stream: ChatResponseGen = super().stream_chat(sent, **plain)
            return stream
        return self._tools_then_stream(sent, kwargs, plain)

    def _tools_then_stream(
        self, sent: list[ChatMessage], kwargs: dict[str, Any], plain: dict[str, Any]
    ) -> ChatResponseGen:
        assert self._tool_llm is not None
        reply = self._tool_llm.chat(sent, **kwargs)
        if reply.message.additional_kwargs.get("tool_calls"):
            yield ChatResponse(message=reply.message, delta="", raw=reply.raw)
            return
        yield from super().stream_chat(sent, **plain)


def calls_as_text(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
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
    """The LLM's context window in tokens, from llama-index's metadata for it (for OpenAI models its
    table of model names; an unknown name gives the OpenAILike default, 3900 tokens)."""
    try:
        return llm.metadata.context_window
    except ValueError:
        return DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW
