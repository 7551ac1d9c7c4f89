"""Chatbot with memory: a llama-index OpenAIAgent over a ChatMemoryBuffer, saved by name.

This is the one module that builds agents and memories (``build_memory``, ``build_agent``), so
a later move to another agent class touches only this file.

One turn (DESIGN.md): the user message is appended and, if the conversation has a name, saved
before the model is called; ``agent.stream_chat`` streams the reply; the assistant message is
appended and saved when the stream ends. A cut-off reply is saved marked incomplete.
"""

from __future__ import annotations

from typing import Iterator

from llama_index.agent.openai import OpenAIAgent
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.llms.openai import OpenAI

from controller.chat_session import ChatError, ChatSession
from model.conversation_store import ConversationStore, StoreError
from model.message import Message
from utils.llm import LLMConfig, build_llm, context_window_of

#: Share of (context window - max tokens) given to the memory. The rest is slack for the system
#: prompt and for the gap between llama-index's tokenizer (tiktoken) and the model's own.
MEMORY_SHARE = 0.85


def memory_token_limit(context_window: int, max_tokens: int) -> int:
    """Return the memory's token limit: ``(context_window - max_tokens) * MEMORY_SHARE``, at least 256.

    Args:
        context_window: the model's context window, in tokens.
        max_tokens: the most tokens one reply may take.
    """
    return max(256, int((context_window - max_tokens) * MEMORY_SHARE))


def build_memory(messages: list[Message], llm: OpenAI, token_limit: int) -> ChatMemoryBuffer:
    """Return a ChatMemoryBuffer holding ``messages`` (complete ones only), oldest first.

    Args:
        messages: the stored conversation.
        llm: the model the memory serves.
        token_limit: most tokens of history sent with a request; older messages are left out.
    """
    history = [m.to_chat_message() for m in messages if not m.incomplete]
    return ChatMemoryBuffer.from_defaults(chat_history=history, llm=llm, token_limit=token_limit)


def build_agent(llm: OpenAI, memory: ChatMemoryBuffer, system_prompt: str | None = None) -> OpenAIAgent:
    """Return an OpenAIAgent (no tools) that answers with ``llm`` and remembers through ``memory``.

    Raises:
        ValueError: from llama-index, if ``llm`` is not a function-calling OpenAI-type model.
    """
    return OpenAIAgent.from_tools(tools=[], llm=llm, memory=memory, system_prompt=system_prompt)


class MemoryChat(ChatSession):
    """The memory page's conversation: agent, memory, messages and the name it is saved under.

    Args:
        config: provider, model and limits.
        store: where named conversations are saved.
        system_prompt: the agent's system prompt, or None.

    Attributes:
        name: the saved conversation's name, or None while it is unsaved.
        save_error: the last auto-save failure, for the user, or None.
    """

    def __init__(self, config: LLMConfig, store: ConversationStore, system_prompt: str | None = None) -> None:
        super().__init__(config)
        self.store = store
        self.system_prompt = system_prompt
        self.name: str | None = None
        self.save_error: str | None = None
        self.rebuild()

    # ----- agent and memory --------------------------------------------------------------
    def rebuild(self) -> None:
        """Rebuild the LLM, the memory (from ``messages``) and the agent."""
        self.llm = build_llm(self.config)
        self.token_limit = memory_token_limit(context_window_of(self.llm), self.config.max_tokens)
        self.memory = build_memory(self.messages, self.llm, self.token_limit)
        self.agent = build_agent(self.llm, self.memory, self.system_prompt)

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on; the agent is rebuilt with the same memory."""
        self.config = config
        self.rebuild()

    # ----- chatting ----------------------------------------------------------------------
    def stream_reply(self, text: str) -> Iterator[str]:
        """Add and auto-save the user's ``text``, then yield the agent's reply deltas.

        Raises:
            ChatError: the provider failed. The user's message stays in ``messages`` and in the
                saved file; the agent is rebuilt from ``messages`` so memory and messages agree.
        """
        self.messages.append(Message.user(text))
        self._autosave()

        def deltas() -> Iterator[str]:
            return self.agent.stream_chat(text).response_gen

        return self._guarded(self._relay(deltas, on_message=lambda message: self._autosave()))

    def _guarded(self, reply: Iterator[str]) -> Iterator[str]:
        try:
            yield from reply
        except (ChatError, GeneratorExit):
            self.rebuild()
            raise

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
        self.rebuild()


__all__ = ["ChatError", "MemoryChat", "build_agent", "build_memory", "memory_token_limit"]
