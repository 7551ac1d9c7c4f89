"""Chat engines: how a reply is produced for a conversation and a user message.

An engine holds no conversation: ``stream(history, message, record)`` builds what it needs from
the messages each time (the memory, the agent) and yields the reply's text deltas, reporting tool
calls and sources on the ``TurnRecord``. The turn runner (``controller.chat``) owns everything
around it: retries, Stop, saving, versions. Three engines:

- ``PlainEngine`` (Simple Chat and ``/v1``): the history that fits, then the message;
- ``AgentEngine`` (the memory page, the chat server's conversations and the workers): a
  ChatMemoryBuffer and an OpenAIAgent rebuilt from the stored messages, with the tools the user
  message was sent with;
- ``KnowledgeEngine`` (the Knowledge Base page, ``kb:<name>`` models): retrieval, then an answer
  from the chunks found, or ``NOTHING_FOUND`` without asking a model;
- ``CompletionEngine`` (``/v1/chat/completions`` for the provider's own models): a client's request
  passed on as it is (its messages, tools and sampling fields), each raw chunk reported as a
  ``ChunkEvent`` so the chat server can answer in OpenAI's format (tool calls, finish reason,
  logprobs, usage).

Each is made by ``from_defaults`` from a resolved ``LLMConfig`` (``utils.providers.resolve_config``).
Given a ``WebSearch`` (``controller.web_search``), the plain, agent and completion engines search the
web first for a user message marked ``web_search``: the model is sent the best passages, numbered,
with the question, and the pages (used and skipped) are reported as the reply's sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import LLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.utils import get_tokenizer

from controller.context import ContextBudget, build_memory, fit_memory, prompt_token_limit
from controller.errors import ChatError
from controller.llama_adapter import (
    build_agent,
    build_context_chat_engine,
    close_stream,
    drain,
    finish_reason_of,
)
from controller.tools import ToolBox, image_keeper
from controller.web_search import CONTEXT_SHARES, WebSearch
from model.attachments import AttachmentReader, AttachmentSpace
from model.message import Message, Source, ToolCall
from utils.knowledge_bases import NOTHING_FOUND, KnowledgeBase, KnowledgeBaseError, source_of
from utils.llm import build_llm, try_build_llm
from utils.providers import LLMConfig, sees_images
from utils.token_count import count_tokens
from utils.web_search import WebSearchError


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A tool call started (``call.result`` None) or ended."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    """The passages a reply is being given."""

    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class ChunkEvent:
    """One piece of a provider's answer, in OpenAI's terms (``CompletionEngine``).

    Attributes:
        delta: the choice's delta: ``content`` and/or ``tool_calls`` (each with its ``index``).
        finish_reason: ``stop``, ``length`` or ``tool_calls`` on the last piece, else None.
        logprobs: the piece's ``logprobs`` object, or None.
        usage: ``{"prompt_tokens", "completion_tokens", "total_tokens"}`` when the provider gave it.
    """

    delta: dict[str, Any]
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None
    usage: dict[str, int] | None = None


TurnEvent = ToolCallEvent | SourcesEvent | ChunkEvent
Listener = Callable[[TurnEvent], None]


@dataclass
class TurnRecord:
    """What an engine reports while it answers: tool calls, sources, and whether a model answered.

    Attributes:
        tool_calls: the finished tool calls, in order.
        sources: the passages the reply was given.
        answered_by_model: False when the engine answered by itself (``NOTHING_FOUND``).
        finish_reason: the model's last finish reason (``stop``, ``length``, ``tool_calls``), or None
            when the provider gave none.
        budget: what the request carried when the engine changed it (web passages added), else None.
        listeners: called with each event as it happens (e.g. a page drawing a tool call live).
        images: where the conversation's images are read from (for a model that sees them), or None.
    """

    tool_calls: list[ToolCall] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    answered_by_model: bool = True
    finish_reason: str | None = None
    budget: ContextBudget | None = None
    listeners: list[Listener] = field(default_factory=list)
    images: AttachmentSpace | None = None

    def tool_call(self, call: ToolCall) -> None:
        """Report a tool call that started (``result`` None) or ended (then it is kept)."""
        if call.result is not None:
            self.tool_calls.append(call)
        self._emit(ToolCallEvent(call))

    def chunk(self, event: ChunkEvent) -> None:
        """Report a raw piece of the provider's answer."""
        if event.finish_reason:
            self.finish_reason = event.finish_reason
        self._emit(event)

    def finished(self, reason: str) -> None:
        """Report the model's finish reason (``length``: the reply reached the token limit)."""
        self.finish_reason = reason

    def found(self, sources: Sequence[Source]) -> None:
        """Report the passages the reply is given."""
        self.sources = list(sources)
        self._emit(SourcesEvent(tuple(sources)))

    def reset(self) -> None:
        """Forget what a failed attempt reported (before the next attempt)."""
        self.tool_calls.clear()
        self.sources.clear()
        self.answered_by_model = True
        self.finish_reason = None
        self.budget = None

    def _emit(self, event: TurnEvent) -> None:
        for listener in self.listeners:
            listener(event)


class ChatEngine(Protocol):
    """How replies are produced (see the module docstring)."""

    @property
    def config(self) -> LLMConfig:
        """The provider and model that answer."""

    def with_config(self, config: LLMConfig) -> ChatEngine:
        """The same engine answering with ``config`` (e.g. the local model as a fallback)."""

    def token_limit(self) -> int:
        """Tokens a request may carry (``controller.context.memory_token_limit``)."""

    def sees_images(self) -> bool:
        """True when images are sent to the model as images (else their OCR text is)."""

    def memory(self, history: Sequence[Message]) -> ChatMemoryBuffer:
        """The memory a turn after ``history`` starts from."""

    def budget(self, history: Sequence[Message], text: str) -> ContextBudget:
        """What a request for ``text`` after ``history`` would carry.

        Raises:
            ChatError: ``text`` does not fit at all (``refused_text`` holds it).
        """

    def user_message(self, message: Message) -> Message:
        """``message`` marked for this engine (e.g. with its knowledge base).

        Raises:
            ChatError: this engine cannot answer yet (``refused_text`` holds the text).
        """

    def reply_message(self, reply: Message) -> Message:
        """``reply`` marked for this engine (e.g. JSON mode, its knowledge base)."""

    def stream(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Iterator[str]:
        """The reply to ``message`` after ``history``, as text deltas.

        Raises:
            Exception: the provider's failures, while iterating (the turn runner explains them).
        """


class _Engine:
    """What every engine shares: its config, model, budget, memory and web search (None: off)."""

    def __init__(self, config: LLMConfig, web: WebSearch | None = None) -> None:
        self._config = config
        self._llm = try_build_llm(config)
        self._web = web

    @property
    def config(self) -> LLMConfig:
        """The provider and model that answer."""
        return self._config

    def token_limit(self) -> int:
        """Tokens a request may carry (the context window less room for the reply, with slack)."""
        return prompt_token_limit(self._config, self._llm)

    def sees_images(self) -> bool:
        """True when the model takes images (``utils.providers.sees_images``)."""
        return sees_images(self._config)

    def _images(self, record: TurnRecord) -> AttachmentReader | None:
        """Where images are read from for this turn, when they are sent as images; else None."""
        return record.images if self.sees_images() else None

    def memory(self, history: Sequence[Message]) -> ChatMemoryBuffer:
        """A ChatMemoryBuffer holding ``history``'s complete messages."""
        return build_memory(history, self._llm, self.token_limit())

    def budget(self, history: Sequence[Message], text: str) -> ContextBudget:
        """What a request for ``text`` after ``history`` would carry.

        Raises:
            ChatError: ``text`` does not fit at all (``refused_text`` holds it).
        """
        return fit_memory(self.memory(history), text, self._config.system_prompt, self.token_limit())

    def user_message(self, message: Message) -> Message:
        """``message`` as it is."""
        return message

    def reply_message(self, reply: Message) -> Message:
        """``reply``, marked as a JSON-mode reply when JSON mode is on."""
        return replace(reply, json_mode=self._config.json_mode)

    def _searched(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Message:
        """``message`` with the web's passages in its text when it is marked ``web_search`` (the
        pages reported on ``record``), else ``message``.

        Raises:
            WebSearchError: the search failed, or web search is not set up for this engine.
        """
        if not message.web_search:
            return message
        if self._web is None:
            raise WebSearchError("Web search is not available here.")
        count = get_tokenizer()
        limit = self.token_limit()
        fixed = len(count(message.model_text())) + len(count(self._config.system_prompt or "")) + WEB_PROMPT_TOKENS
        context = self._web.context(message.content, max(0, min(int(limit * self._web.share), limit - fixed)))
        record.found(context.sources)
        searched = replace(message, content=context.prompt)
        sent = self.budget(history, searched.model_text())
        record.budget = replace(sent, web_tokens=context.tokens, web_pages=len(context.used))
        return searched

    def _fitted(
        self, history: Sequence[Message], text: str, images: AttachmentReader | None = None
    ) -> tuple[LLM, ChatMemoryBuffer]:
        """The model (``build_llm`` raises what is missing) and the memory that fits next to ``text``
        (its images as images when ``images`` is given)."""
        llm = build_llm(self._config)
        memory = build_memory(history, llm, self.token_limit(), images)
        fit_memory(memory, text, self._config.system_prompt, self.token_limit())
        return llm, memory


class PlainEngine(_Engine):
    """The newest history that fits, then the message, to the model; no tools, no retrieval."""

    @classmethod
    def from_defaults(cls, config: LLMConfig, web: WebSearch | None = None) -> PlainEngine:
        """The plain engine for ``config``, searching the web with ``web`` when a message asks."""
        return cls(config, web)

    def with_config(self, config: LLMConfig) -> PlainEngine:
        """The plain engine for ``config``."""
        return PlainEngine(config, self._web)

    def stream(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Iterator[str]:
        """The model's reply to the system prompt, the history that fits and ``message`` (with the
        web's passages when it asks for a search)."""
        searched = self._searched(history, message, record)
        images = self._images(record)
        llm, memory = self._fitted(history, searched.model_text(), images)
        system = self._config.system_prompt
        sent = [ChatMessage(role=MessageRole.SYSTEM, content=system)] if system else []
        sent += [*memory.get(), searched.to_chat_message(images)]
        stream = llm.stream_chat(sent)
        try:
            for chunk in stream:
                reason = finish_reason_of(chunk.raw)
                if reason:
                    record.finished(reason)
                yield chunk.delta or ""
        finally:  # closing it on Stop closes the HTTP stream: the server stops generating
            close_stream(stream)


class AgentEngine(_Engine):
    """A ChatMemoryBuffer and an OpenAIAgent rebuilt from the messages for each turn, offering the
    tools the user message was sent with (``Message.tools``, built by ``toolbox``)."""

    def __init__(self, config: LLMConfig, toolbox: ToolBox | None = None, web: WebSearch | None = None) -> None:
        super().__init__(config, web)
        self._toolbox = toolbox

    @classmethod
    def from_defaults(
        cls, config: LLMConfig, toolbox: ToolBox | None = None, web: WebSearch | None = None
    ) -> AgentEngine:
        """The agent engine for ``config``; ``toolbox`` builds tools (None: tools are not offered);
        ``web`` searches for messages marked ``web_search`` (None: such a message fails, saying so)."""
        return cls(config, toolbox, web)

    def with_config(self, config: LLMConfig) -> AgentEngine:
        """The agent engine for ``config`` with the same tools and web search."""
        return AgentEngine(config, self._toolbox, self._web)

    def stream(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Iterator[str]:
        """The agent's reply; each tool call is reported on ``record``. On the local model, tools are
        offered again after a round of calls only when one failed (the small model otherwise calls
        the same tool again and again)."""
        message = self._searched(history, message, record)
        images = self._images(record)
        llm, memory = self._fitted(history, message.model_text(), images)
        web_budget = int(self.token_limit() * (self._web.share if self._web else CONTEXT_SHARES["medium"]))
        tools = self._toolbox.build(list(message.tools), llm, web_budget) if self._toolbox and message.tools else []
        agent = build_agent(
            llm,
            memory,
            self._config.system_prompt,
            tools,
            on_call=record.tool_call,
            tools_again_only_after_error=self._config.provider == "local",
            on_finish=record.finished,
            first_message=message.to_chat_message(images) if images is not None else None,
            keep_images=image_keeper(record.images) if record.images is not None else None,
        )
        yield from drain(agent.stream_chat(message.model_text()))


class KnowledgeEngine(_Engine):
    """Answers from a knowledge base: the top-k chunks above the threshold for the user's own words
    (not the files attached to them), then llama-index's CondensePlusContextChatEngine over them
    with the conversation as memory; with no chunk, ``NOTHING_FOUND`` and no model is asked.

    Args:
        config: the model that answers.
        knowledge_base: the knowledge base, or None until one is chosen.
        top_k: chunks retrieved per question.
        threshold: least cosine similarity a chunk found by meaning needs, 0 to 1.
        mode: how chunks are found, one of ``utils.knowledge_bases.RETRIEVAL_MODES`` (hybrid,
            vector, keyword).
    """

    def __init__(
        self,
        config: LLMConfig,
        knowledge_base: KnowledgeBase | None,
        top_k: int = 3,
        threshold: float = 0.3,
        mode: str = "hybrid",
    ) -> None:
        super().__init__(config)
        self.knowledge_base, self.top_k, self.threshold, self.mode = knowledge_base, top_k, threshold, mode

    @classmethod
    def from_defaults(
        cls, config: LLMConfig, knowledge_base: KnowledgeBase | None, **retrieval: Any
    ) -> KnowledgeEngine:
        """The knowledge-base engine for ``config`` over ``knowledge_base``; ``retrieval`` holds
        the constructor's ``top_k``, ``threshold`` and ``mode`` by name, its defaults for the rest."""
        return cls(config, knowledge_base, **retrieval)

    def with_config(self, config: LLMConfig) -> KnowledgeEngine:
        """The same knowledge base and retrieval settings, answering with ``config``."""
        return KnowledgeEngine(config, self.knowledge_base, self.top_k, self.threshold, self.mode)

    def sees_images(self) -> bool:
        """False: the knowledge-base chat engine sends text only, so images are read with OCR."""
        return False

    def user_message(self, message: Message) -> Message:
        """``message`` marked with the knowledge base.

        Raises:
            ChatError: no knowledge base is chosen yet (``refused_text`` holds the text).
        """
        if self.knowledge_base is None:
            raise ChatError("Choose or create a knowledge base in the sidebar first.", refused_text=message.content)
        return replace(message, knowledge_base=self.knowledge_base.name)

    def reply_message(self, reply: Message) -> Message:
        """``reply`` marked with the knowledge base."""
        name = self.knowledge_base.name if self.knowledge_base is not None else None
        return replace(super().reply_message(reply), knowledge_base=name)

    def stream(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Iterator[str]:
        """The answer from the chunks found for ``message.content``, or ``NOTHING_FOUND``."""
        kb = self.knowledge_base
        question = message.content or message.model_text()
        try:
            found = kb.retrieve(question, self.top_k, self.threshold, self.mode) if kb else []
        except KnowledgeBaseError as exc:
            raise ChatError(str(exc)) from exc
        if not found:
            record.answered_by_model = False
            yield NOTHING_FOUND
            return
        record.found([source_of(node) for node in found])
        text = message.model_text()
        llm, memory = self._fitted(history, text)
        engine = build_context_chat_engine(found, llm, memory, self._config.system_prompt)
        parts: list[str] = []
        for delta in drain(engine.stream_chat(text), on_finish=record.finished):
            parts.append(delta)
            yield delta
        if record.finish_reason is None:  # llama-index's response synthesizer hides the provider's
            record.finished(length_or_stop(self._config, "".join(parts)))


class CompletionEngine(_Engine):
    """A client's chat-completion request passed on to the provider as it is: its own messages (the
    conversation's history is not used), with ``fields`` (tools, tool choice, sampling, response
    format, logprobs) added to the request. Each raw chunk is reported as a ``ChunkEvent``.

    Args:
        config: the provider and model (its temperature, max tokens and stop are the request's).
        messages: the request's messages, as llama-index ChatMessages (tool calls and results in
            ``additional_kwargs``, as llama-index's OpenAI classes send them).
        fields: the other request fields for the provider, in OpenAI's names.
    """

    def __init__(
        self, config: LLMConfig, messages: Sequence[ChatMessage], fields: dict[str, Any], web: WebSearch | None = None
    ) -> None:
        super().__init__(config, web)
        self._messages, self._fields = list(messages), dict(fields)

    @classmethod
    def from_defaults(
        cls, config: LLMConfig, messages: Sequence[ChatMessage], fields: dict[str, Any], web: WebSearch | None = None
    ) -> CompletionEngine:
        """The engine for one request; with ``web``, a ``message`` marked ``web_search`` has the
        web's passages put into the request's last user message."""
        return cls(config, messages, fields, web)

    def with_config(self, config: LLMConfig) -> CompletionEngine:
        """The same request to another model."""
        return CompletionEngine(config, self._messages, self._fields, self._web)

    def budget(self, history: Sequence[Message], text: str) -> ContextBudget:
        """What the request carries: its own messages with ``text`` in place of the last user one
        (nothing is left out: the client chose them).

        Raises:
            ChatError: they do not fit in the model's context window (``refused_text`` holds ``text``).
        """
        count = get_tokenizer()
        others = [m.content or "" for m in self._messages[:-1]]
        tokens = len(count(text)) + sum(len(count(t)) for t in others)
        if tokens > self.token_limit():
            raise ChatError(
                f"The request is about {tokens:,} tokens with the web's passages; this model takes at most "
                f"{self.token_limit():,}.",
                refused_text=text,
            )
        return ContextBudget(len(self._messages), tokens, 0, self.token_limit())

    def stream(self, history: Sequence[Message], message: Message, record: TurnRecord) -> Iterator[str]:
        """The provider's answer; every chunk is reported, its text yielded."""
        llm = build_llm(self._config)
        messages = self._messages
        if message.web_search:
            searched = self._searched(history, message, record)
            messages = _with_last_user_text(messages, searched.content)
        # The provider's own usage comes in a last chunk when asked (llama-cpp-python's server ignores it).
        stream = llm.stream_chat(messages, **self._fields, stream_options={"include_usage": True})
        try:
            for response in stream:
                event = chunk_event(response.raw)
                if event is not None:
                    record.chunk(event)
                yield response.delta or ""
        finally:  # closing it on Stop closes the HTTP stream: the server stops generating
            close_stream(stream)


def _with_last_user_text(messages: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    """``messages`` with the content of the last user message replaced by ``text``."""
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        if out[index].role == MessageRole.USER:
            out[index] = ChatMessage(
                role=MessageRole.USER, content=text, additional_kwargs=out[index].additional_kwargs
            )
            break
    return out


#: Tokens the web prompt's own words take besides the passages and the question (an upper bound).
WEB_PROMPT_TOKENS = 80
#: Tokens a reply may fall short of ``max_tokens`` by and still count as cut there: a reply's text
#: counted again may come out a token or two shorter than the model's own count.
CUT_SLACK_TOKENS = 2


def length_or_stop(config: LLMConfig, text: str) -> str:
    """The finish reason of a reply whose provider's own was not seen: ``length`` when ``text`` is
    within ``CUT_SLACK_TOKENS`` of ``config.max_tokens`` (counted as ``utils.token_count`` counts:
    the local model's own tokenizer, else an estimate), else ``stop``."""
    return "length" if count_tokens(config, [text]) >= config.max_tokens - CUT_SLACK_TOKENS else "stop"


def chunk_event(raw: Any) -> ChunkEvent | None:
    """The ``ChunkEvent`` of a raw provider answer: a stream chunk (``choices[0].delta``), or a whole
    completion (``choices[0].message``, as the local model's tool server answers); None for neither."""
    choices = getattr(raw, "choices", None)
    usage = _plain(getattr(raw, "usage", None))
    if not choices:
        return ChunkEvent({}, usage=usage) if usage else None
    choice = choices[0]
    part = getattr(choice, "delta", None) or getattr(choice, "message", None)
    if part is None:
        return None
    delta: dict[str, Any] = {}
    if getattr(part, "content", None):
        delta["content"] = part.content
    calls = getattr(part, "tool_calls", None)
    if calls:
        delta["tool_calls"] = [
            {**_plain(call), "index": getattr(call, "index", None) or position} for position, call in enumerate(calls)
        ]
    return ChunkEvent(delta, getattr(choice, "finish_reason", None), _plain(getattr(choice, "logprobs", None)), usage)


def _plain(value: Any) -> Any:
    """A provider SDK object (pydantic) as plain JSON data, None left as it is."""
    if value is None or isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if dump is not None else value
