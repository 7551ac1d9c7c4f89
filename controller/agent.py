"""Construction of llama-index's chat machinery, in one module: the LLM, the ChatMemoryBuffer,
the OpenAIAgent, the knowledge base's chat engine, and reading their streamed replies.

A later move from OpenAIAgent to FunctionAgent (OpenAIAgent is deprecated in llama-index)
touches only this file.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from queue import Empty

from llama_index.agent.openai import OpenAIAgent
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.llms.openai import OpenAI

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
    history = [m.to_chat_message() for m in messages if not m.incomplete]
    return ChatMemoryBuffer.from_defaults(chat_history=history, llm=llm, token_limit=token_limit)


def build_agent(llm: OpenAI, memory: ChatMemoryBuffer, system_prompt: str | None = None) -> OpenAIAgent:
    """Return an OpenAIAgent (no tools) that answers with ``llm`` and remembers through ``memory``.

    Raises:
        ValueError: from llama-index, if ``llm`` is not a function-calling OpenAI-type model.
    """
    return OpenAIAgent.from_tools(tools=[], llm=llm, memory=memory, system_prompt=system_prompt or None)


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
