"""Simple chat: stream a reply to the whole session's messages; nothing is saved."""

from __future__ import annotations

from typing import Iterator

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from controller.chat_session import ChatSession
from model.message import Message
from utils.llm import LLMConfig, build_llm


class SimpleChat(ChatSession):
    """A chat whose every request carries all of the session's messages as history.

    Args:
        config: provider, model and limits.
        system_prompt: sent first with every request, or None for none.
    """

    def __init__(self, config: LLMConfig, system_prompt: str | None = None) -> None:
        super().__init__(config)
        self.system_prompt = system_prompt
        self.llm = build_llm(config)

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on; the messages are kept."""
        self.config = config
        self.llm = build_llm(config)

    def history(self) -> list[ChatMessage]:
        """Return what is sent to the model: the system prompt, then every complete message."""
        prefix = [ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt)] if self.system_prompt else []
        return prefix + [m.to_chat_message() for m in self.messages if not m.incomplete]

    def stream_reply(self, text: str) -> Iterator[str]:
        """Add the user's ``text`` and yield the reply's text deltas as they arrive.

        Raises:
            ChatError: the provider failed; the user's message stays in ``messages``.
        """
        self.messages.append(Message.user(text))
        history = self.history()

        def deltas() -> Iterator[str]:
            for chunk in self.llm.stream_chat(history):
                yield chunk.delta or ""

        return self._relay(deltas, on_message=lambda message: None)
