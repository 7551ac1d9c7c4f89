"""Construction of llama-index's chat machinery, in one module: the LLM, the ChatMemoryBuffer,
the OpenAIAgent (with its tools and the record of their calls), the knowledge base's chat
engine, and reading their streamed replies.

A later move from OpenAIAgent to FunctionAgent (OpenAIAgent is deprecated in llama-index)
touches only this file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from queue import Empty

from llama_index.agent.openai import OpenAIAgent, OpenAIAgentWorker
from llama_index.core.agent.types import Task
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.memory.types import BaseMemory
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.tools import BaseTool, ToolOutput
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai.utils import OpenAIToolCall

from model.message import Message
from utils.llm import LLMConfig, ProviderConfigError, build_llm, close_open_responses


def make_llm(config: LLMConfig) -> OpenAI | None:
    """Return ``build_llm(config)``, or None when the config is missing a key or base URL.

    No request is made. A None LLM lets a page still show the conversation; the next message
    then raises the ProviderConfigError that says what is missing.
    """
    try:
        return build_llm(config)
    except ProviderConfigError:
        return None


def build_memory(messages: list[Message], llm: OpenAI | None, token_limit: int) -> ChatMemoryBuffer:
    """Return a ChatMemoryBuffer holding ``messages`` (complete ones only), oldest first.

    Args:
        messages: the stored conversation.
        llm: the model the memory serves, or None when none can be built yet.
        token_limit: most tokens of history sent with a request; older messages are left out.
    """
    history = [chat for m in messages if not m.incomplete for chat in m.to_chat_messages()]
    return ChatMemoryBuffer.from_defaults(chat_history=history, llm=llm, token_limit=token_limit)


#: Most rounds of tool calls in one turn; the request after the last round offers no tools, so
#: the model answers in words.
MAX_TOOL_ROUNDS = 3


def build_agent(
    llm: OpenAI,
    memory: ChatMemoryBuffer,
    system_prompt: str | None = None,
    tools: list[BaseTool] | None = None,
    on_call: Callable[[dict], None] | None = None,
    tools_again_only_after_error: bool = False,
) -> OpenAIAgent:
    """Return an OpenAIAgent that answers with ``llm``, remembers through ``memory`` and may call ``tools``.

    Args:
        llm: the model (a function-calling OpenAI-type model).
        memory: the conversation so far.
        system_prompt: sent first, or None.
        tools: the tools offered (none: a plain chat, as without tools).
        on_call: called with each tool call's record (``ToolCallWorker``) when it starts (its
            ``result`` None) and when it ends; the calls of the last turn are in
            ``agent.agent_worker.calls``.
        tools_again_only_after_error: offer tools again after a round of calls only when one of
            them failed (for the small local model, which otherwise calls tools again and again).

    Raises:
        ValueError: from llama-index, if ``llm`` is not a function-calling OpenAI-type model.
    """
    tools = tools or []
    agent = OpenAIAgent.from_tools(tools=tools, llm=llm, memory=memory, system_prompt=system_prompt or None)
    worker = ToolCallWorker.from_tools(
        tools=tools,
        llm=llm,
        system_prompt=system_prompt or None,
        max_function_calls=MAX_TOOL_ROUNDS * 8,
        callback_manager=agent.callback_manager,
    )
    worker.on_call = on_call
    worker.tools_again_only_after_error = tools_again_only_after_error
    agent.agent_worker = worker
    return agent


class ToolCallWorker(OpenAIAgentWorker):
    """llama-index's OpenAIAgentWorker that records each tool call and bounds the rounds of calls.

    Each call is recorded as ``{"id", "name", "arguments" (the JSON text the model wrote), "result"
    (the text given back to the model), "error" (True when the call failed: unknown tool, bad
    arguments, or the tool raised), "round" (0-based round of calls in the turn), "sources" (for a
    knowledge base: the chunks, as ``controller.knowledge_base.source_of`` gives them)}``. The model
    is given a failure as the call's result (``Error: …``) and may try again, for at most
    ``MAX_TOOL_ROUNDS`` rounds.

    Attributes:
        calls: the records of the current turn's calls, in order.
        on_call: called with a record when a call starts (``result`` None) and when it ends.
        tools_again_only_after_error: see ``build_agent``.
    """

    calls: list[dict]
    on_call: Callable[[dict], None] | None = None
    tools_again_only_after_error = False

    def initialize_step(self, task: Task, **kwargs: object) -> object:
        """A new turn: forget the previous turn's calls."""
        self.calls = []
        return super().initialize_step(task, **kwargs)

    def _get_llm_chat_kwargs(
        self, task: Task, openai_tools: list[dict], tool_choice: str | dict = "auto"
    ) -> dict[str, object]:
        """The request's arguments, without tools after ``MAX_TOOL_ROUNDS`` rounds (or after a round
        that went well, with ``tools_again_only_after_error``)."""
        rounds = _rounds(task)
        failed = any(call["error"] for call in self.calls if call["round"] == rounds - 1)
        if rounds >= MAX_TOOL_ROUNDS or (rounds and self.tools_again_only_after_error and not failed):
            openai_tools = []
        return super()._get_llm_chat_kwargs(task, openai_tools, tool_choice)

    def _call_function(
        self, tools: list[BaseTool], tool_call: OpenAIToolCall, memory: BaseMemory, sources: list[ToolOutput]
    ) -> bool:
        """Call one tool (``OpenAIAgentWorker._call_function``) and record the call."""
        function = tool_call.function
        record: dict = {
            "id": tool_call.id or "",
            "name": (function.name if function else None) or "?",
            "arguments": (function.arguments if function else None) or "",
            "result": None,
            "error": False,
            "round": _rounds_in(memory) - 1,
        }
        if self.on_call is not None:
            self.on_call(dict(record))
        try:
            return super()._call_function(tools, tool_call, memory, sources)
        finally:
            output = sources[-1] if sources else None
            record["result"] = output.content if output is not None else "Error: the tool gave no result."
            # Unknown tools and bad arguments come marked is_error; a tool that raised, with the exception.
            record["error"] = output is None or output.is_error or isinstance(output.raw_output, BaseException)
            raw = output.raw_output if output is not None else None
            if isinstance(raw, dict) and raw.get("sources"):
                record["sources"] = list(raw["sources"])
            self.calls.append(record)
            if self.on_call is not None:
                self.on_call(dict(record))


def _rounds_in(memory: BaseMemory) -> int:
    """Assistant messages with tool calls in a turn's new messages: the rounds of calls so far."""
    return sum(1 for m in memory.get_all() if m.additional_kwargs.get("tool_calls"))


def _rounds(task: Task) -> int:
    """``_rounds_in`` the task's new messages."""
    return _rounds_in(task.extra_state["new_memory"])


def build_context_chat_engine(
    retriever: BaseRetriever, llm: OpenAI, memory: ChatMemoryBuffer, system_prompt: str | None, threshold: float
) -> CondensePlusContextChatEngine:
    """Return llama-index's CondensePlusContextChatEngine answering from ``retriever``'s chunks.

    The question is not condensed by the model first (``skip_condense``): retrieval uses the
    user's own words, which works with the small local model that rewrites questions poorly.

    Args:
        retriever: the knowledge base's retriever (top-k chunks).
        llm: the model that answers.
        memory: the conversation so far.
        system_prompt: put before the context, or None.
        threshold: chunks scoring below this cosine similarity (0 to 1) are dropped.
    """
    return CondensePlusContextChatEngine.from_defaults(
        retriever=retriever,
        llm=llm,
        memory=memory,
        system_prompt=system_prompt or None,
        skip_condense=True,
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=threshold)],
    )


def drain(response: StreamingAgentChatResponse, poll: float = 0.05) -> Iterator[str]:
    """Yield the text deltas of an agent's or chat engine's streamed response as they arrive.

    llama-index's own ``response_gen`` waits for the next delta in a ``time.sleep(0)`` loop,
    which keeps a core busy; on 2 cores that slowed the local model's stream by about a quarter
    (bench/RESULTS.md). This reads the same queue with blocking waits of ``poll`` seconds.

    Closing this generator (the user pressed Stop) closes the model's HTTP stream too: the
    thread that reads it closes its chat stream at the next delta, which closes the connection,
    and the server stops generating. A response read in this thread (a chat engine's, with
    ``is_writing_to_memory`` False) is closed here directly.

    Raises:
        Exception: whatever the agent's stream thread raised (provider errors), once it is seen.
    """
    if not response.is_writing_to_memory:
        yield from _direct(response)
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
    finally:
        stopped.set()


def _direct(response: StreamingAgentChatResponse) -> Iterator[str]:
    """The deltas of a response whose chat stream is read in this thread; closed when this is."""
    stream = response.chat_stream
    if stream is None:
        raise ValueError("the response has no chat stream")
    try:
        for chunk in stream:
            if chunk.delta:
                response.unformatted_response += chunk.delta
                yield chunk.delta
    finally:
        close_stream(stream)


def close_stream(stream: object) -> None:
    """Close a streamed reply's generator chain and the HTTP responses this thread has open, now.

    Must run in the thread that read the stream (the provider's responses are tracked per
    thread, ``utils.llm.close_open_responses``): closing the connection stops the server generating.
    """
    if isinstance(stream, Generator):
        stream.close()
    close_open_responses()
