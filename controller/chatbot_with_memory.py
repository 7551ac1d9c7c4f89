"""Chatbot with memory: a llama-index OpenAIAgent over a ChatMemoryBuffer, saved by name.

This is the one module that builds agents and memories (``build_memory``, ``fit_memory``,
``build_agent``), so a later move to another agent class touches only this file.

One turn (DESIGN.md): the user message is appended and, if the conversation has a name, saved
before the model is called; ``agent.stream_chat`` streams the reply; the assistant message is
appended and saved when the stream ends. A cut-off reply is saved marked incomplete.

Context budget: the prompt may use ``memory_token_limit`` tokens (the context window minus
max tokens, less slack for tokenizer differences). The system prompt and the new message are
counted first; the memory then keeps the newest messages that fit, and the rest are left out.
"""

from __future__ import annotations

from queue import Empty
from typing import Iterator

from llama_index.agent.openai import OpenAIAgent
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.llms.openai import OpenAI

from controller.chat_session import ChatError, ChatSession, ContextBudget
from model.conversation_store import ConversationStore, StoreError
from model.message import Message
from utils.llm import DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW, LLMConfig, ProviderConfigError, build_llm, context_window_of

#: Share of (context window - max tokens) the prompt may use. The rest is slack for the gap
#: between llama-index's tokenizer (tiktoken's cl100k) and the model's own, and for the chat
#: template's tokens around each message.
PROMPT_SHARE = 0.75


def memory_token_limit(context_window: int, max_tokens: int) -> int:
    """Return the prompt's token limit: ``(context_window - max_tokens) * PROMPT_SHARE``, at least 256.

    Args:
        context_window: the model's context window, in tokens.
        max_tokens: the most tokens one reply may take.
    """
    return max(256, int((context_window - max_tokens) * PROMPT_SHARE))


def make_llm(config: LLMConfig) -> OpenAI | None:
    """``build_llm(config)``, or None when the config is missing a key or base URL."""
    try:
        return build_llm(config)
    except ProviderConfigError:
        return None


def build_memory(messages: list[Message], llm: OpenAI, token_limit: int) -> ChatMemoryBuffer:
    """Return a ChatMemoryBuffer holding ``messages`` (complete ones only), oldest first.

    Args:
        messages: the stored conversation.
        llm: the model the memory serves.
        token_limit: most tokens of history sent with a request; older messages are left out.
    """
    history = [m.to_chat_message() for m in messages if not m.incomplete]
    return ChatMemoryBuffer.from_defaults(chat_history=history, llm=llm, token_limit=token_limit)


def fit_memory(memory: ChatMemoryBuffer, text: str, system_prompt: str | None, limit: int) -> ContextBudget:
    """Make ``memory`` keep only the history that fits next to ``text`` and the system prompt.

    Args:
        memory: the conversation before ``text``; its ``token_limit`` is set here.
        text: the new user message.
        system_prompt: sent first, or None.
        limit: tokens the whole prompt may take (``memory_token_limit``).

    Returns:
        the ContextBudget of the request about to be made.

    Raises:
        ChatError: ``text`` alone (with the system prompt) is bigger than ``limit``; it carries
            ``refused_text`` so that nothing the user typed is lost.
    """
    count = memory.tokenizer_fn
    fixed = len(count(text)) + (len(count(system_prompt)) if system_prompt else 0)
    if fixed > limit:
        raise ChatError(
            f"Your message is about {fixed:,} tokens, but this model takes at most {limit:,} per message "
            "(its context window less room for the reply). Shorten it, or pick a model with a larger "
            "context window. Your text is below so you can copy it.",
            refused_text=text,
        )
    memory.token_limit = limit - fixed
    history = memory.get()
    tokens = fixed + sum(len(count(m.content or "")) for m in history)
    return ContextBudget(
        sent_messages=len(history) + 1 + (1 if system_prompt else 0),
        sent_tokens=tokens,
        left_out=len(memory.get_all()) - len(history),
        token_limit=limit,
    )


def build_agent(llm: OpenAI, memory: ChatMemoryBuffer, system_prompt: str | None = None) -> OpenAIAgent:
    """Return an OpenAIAgent (no tools) that answers with ``llm`` and remembers through ``memory``.

    Raises:
        ValueError: from llama-index, if ``llm`` is not a function-calling OpenAI-type model.
    """
    return OpenAIAgent.from_tools(tools=[], llm=llm, memory=memory, system_prompt=system_prompt or None)


def drain(response: StreamingAgentChatResponse, poll: float = 0.05) -> Iterator[str]:
    """Yield the text deltas of an agent's streamed response as they arrive.

    llama-index's own ``response_gen`` waits for the next delta in a ``time.sleep(0)`` loop,
    which keeps a core busy; on 2 cores that slowed the local model's stream by about a quarter
    (bench/RESULTS.md). This reads the same queue with blocking waits of ``poll`` seconds.

    Raises:
        Exception: whatever the agent's stream thread raised (provider errors), once it is seen.
    """
    while True:
        try:
            delta = response.queue.get(timeout=poll)
        except Empty:
            if response.exception is not None:
                raise response.exception
            if response.is_done and response.queue.empty():
                return
            continue
        if response.exception is not None:
            raise response.exception
        if delta:
            response.unformatted_response += delta
            yield delta


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
        threshold: chunks scoring below this cosine similarity are dropped.
    """
    return CondensePlusContextChatEngine.from_defaults(
        retriever=retriever, llm=llm, memory=memory, system_prompt=system_prompt or None,
        skip_condense=True, node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=threshold)],
    )


def before_pending(messages: list[Message], pending: str | None) -> list[Message]:
    """The messages before the last user message when that one is still waiting for a reply."""
    if pending is None:
        return messages
    last_user = max(i for i, m in enumerate(messages) if m.role.value == "user")
    return messages[:last_user]


class MemoryChat(ChatSession):
    """The memory page's conversation: agent, memory, messages and the name it is saved under.

    Args:
        config: provider, model, limits and system prompt.
        store: where named conversations are saved.

    Attributes:
        name: the saved conversation's name, or None while it is unsaved.
        save_error: the last auto-save failure, for the user, or None.
    """

    def __init__(self, config: LLMConfig, store: ConversationStore) -> None:
        super().__init__(config)
        self.store = store
        self.name: str | None = None
        self.save_error: str | None = None
        self.rebuild()

    # ----- agent and memory --------------------------------------------------------------
    def rebuild(self, history: list[Message] | None = None) -> None:
        """Rebuild the LLM, the memory (from ``history``, default all messages) and the agent.

        A config that cannot be used (no key) leaves ``llm`` and ``agent`` None; the next message
        then fails with the sentence that says how to fix it.
        """
        self.llm = make_llm(self.config)
        window = context_window_of(self.llm) if self.llm else self.config.context_window or DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW
        self.token_limit = memory_token_limit(window, self.config.max_tokens)
        self.memory = build_memory(self.messages if history is None else history, self.llm, self.token_limit)
        self.agent = build_agent(self.llm, self.memory, self.config.system_prompt) if self.llm else None

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on; the agent is rebuilt with the same messages."""
        self.config = config
        self.rebuild()

    # ----- chatting ----------------------------------------------------------------------
    def stream_reply(self, text: str) -> Iterator[str]:
        """Add and auto-save the user's ``text``, then yield the agent's reply deltas.

        Raises:
            ChatError: the message is too long (nothing is added; ``refused_text`` holds it), or
                the provider failed: the user's message stays in ``messages`` and in the saved
                file, and the agent is rebuilt from ``messages`` so memory and messages agree.
        """
        message = self._user_message(text)
        self.budget = fit_memory(self.memory, text, self.config.system_prompt, self.token_limit)
        self.messages.append(message)
        self._autosave()
        return self._turn(text)

    def _user_message(self, text: str) -> Message:
        """The Message stored for the user's ``text`` (subclasses add their marks or refuse)."""
        return Message.user(text)

    def _resend(self, text: str) -> Iterator[str]:
        """Memory from the messages before the pending ``text``, then the agent's reply to it."""
        self.rebuild(before_pending(self.messages, text))
        self.budget = fit_memory(self.memory, text, self.config.system_prompt, self.token_limit)
        yield from self._turn(text)

    def _turn(self, text: str) -> Iterator[str]:
        def start() -> Iterator[str]:
            if self.agent is None:
                build_llm(self.config)  # raises the ProviderConfigError that says what is missing
            return drain(self.agent.stream_chat(text))

        def before_retry() -> None:  # the failed attempt's task never reached the memory
            self.agent = build_agent(self.llm, self.memory, self.config.system_prompt)

        try:
            yield from self._relay(start, on_message=lambda message: self._autosave(), before_retry=before_retry)
        except (ChatError, GeneratorExit):
            self.rebuild()
            raise
        # The agent moves the turn into its memory from its stream thread, after the stream has
        # ended: a race with the next message. Fresh memory and agent from ``messages`` avoid it.
        self.memory = build_memory(self.messages, self.llm, self.token_limit)
        self.agent = build_agent(self.llm, self.memory, self.config.system_prompt)

    def _autosave(self) -> None:
        """Save under ``name`` if there is one; a failure is kept in ``save_error``, not raised."""
        if self.name is None:
            return
        try:
            self.store.save(self.name, self.messages)
            self.save_error = None
        except StoreError as exc:
            self.save_error = str(exc)

    # ----- the saved conversations -------------------------------------------------------
    def save_as(self, name: str) -> str:
        """Save the conversation under ``name`` (trimmed); later turns auto-save there.

        Returns:
            the trimmed name.

        Raises:
            StoreError: empty name or failed write; the messages stay in the session.
        """
        self.name = self.store.save(name, self.messages)
        self.save_error = None
        return self.name

    def load(self, name: str) -> None:
        """Replace the session's conversation with the saved ``name`` and rebuild memory and agent.

        Raises:
            StoreError: no such conversation, or the file cannot be read.
        """
        messages = self.store.get(name)
        if messages is None:
            raise StoreError(f"There is no saved conversation called {name!r}; it may have been deleted.")
        self.messages = messages
        self.name = name
        self.budget = None
        self.rebuild()

    def delete(self, name: str) -> None:
        """Delete the saved ``name``; if it is the open conversation, it stays open but unnamed.

        Raises:
            StoreError: the write failed; the file is unchanged.
        """
        self.store.delete(name)
        if self.name == name:
            self.name = None

    def rename(self, old: str, new: str) -> str:
        """Rename the saved ``old`` to ``new`` (trimmed); the open conversation follows the rename.

        Returns:
            the trimmed new name.

        Raises:
            StoreError: blank or taken name, no such conversation, or a failed write.
        """
        renamed = self.store.rename(old, new)
        if self.name == old:
            self.name = renamed
        return renamed

    def new_chat(self) -> None:
        """Start an empty, unnamed conversation."""
        self.messages = []
        self.name = None
        self.save_error = None
        self.budget = None
        self.rebuild()


__all__ = [
    "ChatError", "MemoryChat", "build_agent", "build_context_chat_engine", "build_memory", "fit_memory", "memory_token_limit",
]
