"""Every use of llama-index's internals, in one module: the agent with a record of its tool calls,
the knowledge-base chat engine, and reading a streamed reply so that Stop closes the model's stream.

Checked against llama-index-core 0.12.52 and llama-index-agent-openai 0.4.12. The private hooks
this module relies on (a move off OpenAIAgent, e.g. to FunctionAgent, touches only this file):

- ``OpenAIAgentWorker._call_function(tools, tool_call, memory, sources)``: overridden to record each
  tool call (``ToolCallWorker``);
- ``OpenAIAgentWorker._get_llm_chat_kwargs(task, openai_tools, tool_choice)``: overridden to offer
  no tools after ``MAX_TOOL_ROUNDS`` rounds;
- ``OpenAIAgentWorker.initialize_step(task)`` and ``TaskStep.input``: overridden to start a turn
  with a message that has images (a step whose input is None adds no user message);
- ``Task.extra_state["new_memory"]``: the turn's new messages, where the rounds are counted;
- ``OpenAIAgent.agent_worker``: replaced by a ``ToolCallWorker`` after ``OpenAIAgent.from_tools``;
- ``OpenAIAgentWorker._llm``: wrapped by ``FinishObserver`` to see the last chunk's finish reason;
- ``StreamingAgentChatResponse.put_in_queue``, ``queue``, ``is_done``, ``exception``,
  ``is_writing_to_memory``, ``chat_stream`` and ``unformatted_response``: read by ``drain``, which
  also replaces ``put_in_queue`` to stop the agent's stream thread between two chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from queue import Empty
from typing import Any, cast

from llama_index.agent.openai import OpenAIAgent, OpenAIAgentWorker
from llama_index.core.agent.types import Task, TaskStep
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.llms import LLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.memory.types import BaseMemory
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.tools import BaseTool, ToolOutput
from llama_index.llms.openai.utils import OpenAIToolCall

from model.message import Attachment, Source, ToolCall
from utils.response_tracking import close_open_responses

#: Most rounds of tool calls in one turn; the request after the last round offers no tools, so
#: the model answers in words.
MAX_TOOL_ROUNDS = 3

#: Called with each tool call when it starts (``result`` None) and when it ends.
OnToolCall = Callable[[ToolCall], None]
#: Called with a model answer's finish reason (OpenAI's ``stop``, ``length``, ``tool_calls``).
OnFinish = Callable[[str], None]
#: Stores the ``(name, bytes)`` images a tool call made and gives their attachments.
KeepImages = Callable[[list[tuple[str, bytes]]], tuple[Attachment, ...]]


def finish_reason_of(raw: Any) -> str | None:
    """The ``finish_reason`` of a raw OpenAI-format answer or stream chunk (``choices[0]``), or None."""
    choices = getattr(raw, "choices", None) or (raw.get("choices") if isinstance(raw, dict) else None)
    if not choices:
        return None
    choice = choices[0]
    reason = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
    return reason if isinstance(reason, str) else None


def observe_finish(stream: Iterator[Any], on_finish: OnFinish) -> Generator[Any, None, None]:
    """The chunks of a llama-index chat stream, unchanged; each finish reason seen goes to
    ``on_finish``. Closing this closes ``stream``."""
    try:
        for chunk in stream:
            reason = finish_reason_of(getattr(chunk, "raw", None))
            if reason:
                on_finish(reason)
            yield chunk
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class FinishObserver:
    """A model that is ``llm`` in every way except that its chat streams report their finish reason
    (``observe_finish``): the agent worker's model, so a reply cut at the token limit is known."""

    def __init__(self, llm: LLM, on_finish: OnFinish) -> None:
        self._observed, self._on_finish = llm, on_finish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observed, name)

    def stream_chat(self, messages: Any, **kwargs: Any) -> Generator[Any, None, None]:
        """``llm.stream_chat``, observed."""
        return observe_finish(self._observed.stream_chat(messages, **kwargs), self._on_finish)


def build_agent(
    llm: LLM,
    memory: ChatMemoryBuffer,
    system_prompt: str | None = None,
    tools: list[BaseTool] | None = None,
    on_call: OnToolCall | None = None,
    tools_again_only_after_error: bool = False,
    on_finish: OnFinish | None = None,
    first_message: ChatMessage | None = None,
    keep_images: KeepImages | None = None,
) -> Any:
    """An OpenAIAgent that answers with ``llm``, remembers through ``memory`` and may call ``tools``.

    Args:
        llm: the model (a function-calling OpenAI-type model).
        memory: the conversation so far.
        system_prompt: sent first, or None.
        tools: the tools offered (none: a plain chat, as without tools).
        on_call: called with each tool call when it starts and when it ends.
        tools_again_only_after_error: offer tools again after a round of calls only when one of
            them failed (for the small local model, which otherwise calls tools again and again).
        on_finish: called with the finish reason of each answer of the model (the last is the reply's).
        first_message: the user's message as the model gets it, when it is more than text (images
            in it); None sends the text given to ``stream_chat``.
        keep_images: stores the images a tool call made (``raw_output["images"]``) and gives their
            attachments, or None (they are dropped).

    Returns:
        the OpenAIAgent (whose ``stream_chat(text)`` gives a ``StreamingAgentChatResponse``).

    Raises:
        ValueError: from llama-index, if ``llm`` is not a function-calling OpenAI-type model.
    """
    tools = tools or []
    agent = OpenAIAgent.from_tools(tools=tools, llm=llm, memory=memory, system_prompt=system_prompt or None)
    worker = cast(
        ToolCallWorker,
        ToolCallWorker.from_tools(
            tools=tools,
            llm=llm,
            system_prompt=system_prompt or None,
            max_function_calls=MAX_TOOL_ROUNDS * 8,
            callback_manager=agent.callback_manager,
        ),
    )
    worker.on_call = on_call
    worker.calls = []
    worker.tools_again_only_after_error = tools_again_only_after_error
    worker.first_message = first_message
    worker.keep_images = keep_images
    if on_finish is not None:
        worker._llm = FinishObserver(worker._llm, on_finish)  # type: ignore[assignment]  # a wrapper, not an OpenAI
    agent.agent_worker = worker
    return agent


class ToolCallWorker(OpenAIAgentWorker):
    """llama-index's OpenAIAgentWorker that reports each tool call and bounds the rounds of calls.

    The model is given a failure as the call's result (``Error: …``) and may try again, for at most
    ``MAX_TOOL_ROUNDS`` rounds.

    A worker serves one turn (``build_agent`` makes a new one each time).

    Attributes:
        on_call: called with a ToolCall when a call starts (``result`` None) and when it ends.
        calls: the turn's finished calls, in order.
        tools_again_only_after_error: see ``build_agent``.
    """

    on_call: OnToolCall | None = None
    calls: list[ToolCall]
    tools_again_only_after_error = False
    first_message: ChatMessage | None = None
    keep_images: KeepImages | None = None

    def initialize_step(self, task: Task, **kwargs: Any) -> TaskStep:
        """``OpenAIAgentWorker.initialize_step``; with ``first_message`` (a message with images), that
        message starts the turn's new messages in place of the task's text."""
        step: TaskStep = super().initialize_step(task, **kwargs)
        if self.first_message is None:
            return step
        task.extra_state["new_memory"].put(self.first_message)
        return TaskStep(task_id=step.task_id, step_id=step.step_id, input=None)

    def _get_llm_chat_kwargs(
        self, task: Task, openai_tools: list[dict[str, Any]], tool_choice: str | dict[str, Any] = "auto"
    ) -> dict[str, object]:
        """The request's arguments, without tools after ``MAX_TOOL_ROUNDS`` rounds (or after a round
        that went well, with ``tools_again_only_after_error``)."""
        rounds = _rounds_in(task.extra_state["new_memory"])
        failed = any(call.error for call in self.calls if call.round == rounds - 1)
        if rounds >= MAX_TOOL_ROUNDS or (rounds and self.tools_again_only_after_error and not failed):
            openai_tools = []
        kwargs: dict[str, object] = super()._get_llm_chat_kwargs(task, openai_tools, tool_choice)
        return kwargs

    def _call_function(
        self, tools: list[BaseTool], tool_call: OpenAIToolCall, memory: BaseMemory, sources: list[ToolOutput]
    ) -> bool:
        """Call one tool (``OpenAIAgentWorker._call_function``) and report the call."""
        function = tool_call.function
        started = ToolCall(
            id=tool_call.id or "",
            name=(function.name if function else None) or "?",
            arguments=(function.arguments if function else None) or "",
            round=_rounds_in(memory) - 1,
        )
        self._report(started)
        try:
            done: bool = super()._call_function(tools, tool_call, memory, sources)
            return done
        finally:
            finished = _finished(started, sources[-1] if sources else None, self.keep_images)
            self.calls.append(finished)
            self._report(finished)

    def _report(self, call: ToolCall) -> None:
        if self.on_call is not None:
            self.on_call(call)


def _finished(call: ToolCall, output: ToolOutput | None, keep_images: KeepImages | None = None) -> ToolCall:
    """``call`` with its result: the tool's output, ``error`` when llama-index marked it so (unknown
    tool, bad arguments) or the tool raised, a knowledge base's sources and the images it made
    (stored by ``keep_images``)."""
    raw = output.raw_output if output is not None else None
    sources = raw.get("sources") if isinstance(raw, dict) else None
    files = raw.get("images") if isinstance(raw, dict) else None
    images = keep_images(list(files)) if keep_images is not None and files else ()
    return ToolCall(
        id=call.id,
        name=call.name,
        arguments=call.arguments,
        result=output.content if output is not None else "Error: the tool gave no result.",
        error=output is None or output.is_error or isinstance(raw, BaseException),
        round=call.round,
        sources=tuple(s for s in sources or () if isinstance(s, Source)),
        images=images,
    )


def _rounds_in(memory: BaseMemory) -> int:
    """Assistant messages with tool calls in a turn's new messages: the rounds of calls so far."""
    return sum(1 for m in memory.get_all() if m.additional_kwargs.get("tool_calls"))


class FixedRetriever(BaseRetriever):
    """A retriever that returns chunks found beforehand, so that a question is retrieved once."""

    def __init__(self, nodes: list[NodeWithScore]) -> None:
        super().__init__()
        self._nodes = nodes

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return list(self._nodes)


def build_context_chat_engine(
    nodes: list[NodeWithScore], llm: LLM, memory: ChatMemoryBuffer, system_prompt: str | None
) -> CondensePlusContextChatEngine:
    """llama-index's CondensePlusContextChatEngine answering from the retrieved ``nodes``.

    The question is not condensed by the model first (``skip_condense``): the small local model
    rewrites questions poorly, and retrieval has already used the user's own words.
    """
    return CondensePlusContextChatEngine.from_defaults(
        retriever=FixedRetriever(nodes),
        llm=llm,
        memory=memory,
        system_prompt=system_prompt or None,
        skip_condense=True,
    )


def drain(response: StreamingAgentChatResponse, poll: float = 0.05, on_finish: OnFinish | None = None) -> Iterator[str]:
    """Yield the text deltas of an agent's or chat engine's streamed response as they arrive.

    llama-index's own ``response_gen`` waits for the next delta in a ``time.sleep(0)`` loop,
    which keeps a core busy; on 2 cores that slowed the local model's stream by about a quarter.
    This reads the same queue with blocking waits of ``poll`` seconds.

    Closing this generator (the user pressed Stop) closes the model's HTTP stream too: the
    thread that reads it closes its chat stream at the next delta, which closes the connection,
    and the server stops generating. A response read in this thread (a chat engine's, with
    ``is_writing_to_memory`` False) is closed here directly.

    ``on_finish`` gets the finish reasons of a response read in this thread (an agent's come from
    its worker's model, ``build_agent(on_finish=...)``).

    Raises:
        Exception: whatever the agent's stream thread raised (provider errors), once it is seen.
    """
    if not response.is_writing_to_memory:
        yield from _direct(response, on_finish)
        return
    stopped = threading.Event()
    put = response.put_in_queue

    def put_or_stop(delta: str | None) -> None:  # runs in the stream thread, between two chunks
        if stopped.is_set():
            close_stream(response.chat_stream)  # suspended here, so closing is allowed; ends its loop
            return
        put(delta)

    response.put_in_queue = put_or_stop  # type: ignore[method-assign]
    try:
        yield from _queued(response, poll)
    finally:
        stopped.set()


def _queued(response: StreamingAgentChatResponse, poll: float) -> Iterator[str]:
    """The deltas the agent's stream thread puts in the response's queue, until it is done."""
    while True:
        try:
            delta = response.queue.get(timeout=poll)
        except Empty:
            if response.exception is not None:
                raise response.exception from None
            if response.is_done and response.queue.empty():
                return
            continue
        if response.exception is not None:
            raise response.exception
        if delta:
            response.unformatted_response += delta
            yield delta


def _direct(response: StreamingAgentChatResponse, on_finish: OnFinish | None) -> Iterator[str]:
    """The deltas of a response whose chat stream is read in this thread; closed when this is."""
    stream = response.chat_stream
    if stream is None:
        raise ValueError("the response has no chat stream")
    try:
        for chunk in stream:
            reason = finish_reason_of(chunk.raw) if on_finish is not None else None
            if reason and on_finish is not None:
                on_finish(reason)
            if chunk.delta:
                response.unformatted_response += chunk.delta
                yield chunk.delta
    finally:
        close_stream(stream)


def close_stream(stream: object) -> None:
    """Close a streamed reply's generator chain and the HTTP responses this thread has open, now.

    Must run in the thread that read the stream (the provider's responses are tracked per
    thread, ``utils.response_tracking``): closing the connection stops the server generating.
    """
    if isinstance(stream, Generator):
        stream.close()
    close_open_responses()
