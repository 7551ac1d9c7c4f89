"""Simple chat: stream a reply to the session's messages (trimmed to the context window); nothing is saved."""

from __future__ import annotations

from typing import Iterator

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from controller.chat_session import ChatError, ChatSession
from controller.chatbot_with_memory import before_pending, build_memory, fit_memory, make_llm, memory_token_limit
from model.message import Message
from utils.llm import DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW, LLMConfig, build_llm, context_window_of


class SimpleChat(ChatSession):
    """A chat whose every request carries the session's messages as history, newest that fit.

    Args:
        config: provider, model, limits and system prompt.
    """

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        self.set_config(config)

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on; the messages are kept."""
        self.config = config
        self.llm = make_llm(config)
        window = context_window_of(self.llm) if self.llm else config.context_window or DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW
        self.token_limit = memory_token_limit(window, config.max_tokens)

    def history(self, text: str) -> list[ChatMessage]:
        """Return what is sent for the pending ``text``: system prompt, the history that fits, ``text``.

        Sets ``budget``. Raises ChatError (with ``refused_text``) if ``text`` alone does not fit.
        """
        earlier = before_pending(self.messages, self.pending_user_text())
        memory = build_memory(earlier, self.llm, self.token_limit)
        self.budget = fit_memory(memory, text, self.config.system_prompt, self.token_limit)
        prefix = [ChatMessage(role=MessageRole.SYSTEM, content=self.config.system_prompt)] if self.config.system_prompt else []
        return prefix + memory.get() + [ChatMessage(role=MessageRole.USER, content=text)]

    def stream_reply(self, text: str) -> Iterator[str]:
        """Add the user's ``text`` and yield the reply's text deltas as they arrive.

        Raises:
            ChatError: ``text`` is too long (nothing is added), or the provider failed (the user's
                message stays in ``messages``).
        """
        self.messages.append(Message.user(text))
        try:
            history = self.history(text)
        except ChatError:
            self.messages.pop()
            raise
        return self._stream(history)

    def _resend(self, text: str) -> Iterator[str]:
        """The reply to the pending ``text``, with the history before it."""
        yield from self._stream(self.history(text))

    def _stream(self, history: list[ChatMessage]) -> Iterator[str]:
        def start() -> Iterator[str]:
            if self.llm is None:
                build_llm(self.config)  # raises the ProviderConfigError that says what is missing
            for chunk in self.llm.stream_chat(history):
                yield chunk.delta or ""

        return self._relay(start, on_message=lambda message: None)
