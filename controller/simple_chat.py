"""Simple chat: stream a reply to the session's messages (trimmed to the context window); nothing is saved."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from controller.agent import build_memory, close_stream, make_llm
from controller.chat_session import ChatError, ChatSession
from controller.context import before_pending, fit_memory, prompt_token_limit
from model.message import Message
from utils.llm import LLMConfig, build_llm


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
        self.token_limit = prompt_token_limit(config, self.llm)

    def history(self, text: str) -> list[ChatMessage]:
        """Return what is sent for the pending ``text``: system prompt, the history that fits, ``text``.

        Sets ``budget``. Raises ChatError (with ``refused_text``) if ``text`` alone does not fit.
        """
        earlier = before_pending(self.messages, self.pending_user_text())
        memory = build_memory(earlier, self.llm, self.token_limit)
        self.budget = fit_memory(memory, text, self.config.system_prompt, self.token_limit)
        prefix = (
            [ChatMessage(role=MessageRole.SYSTEM, content=self.config.system_prompt)]
            if self.config.system_prompt
            else []
        )
        return prefix + memory.get() + [ChatMessage(role=MessageRole.USER, content=text)]

    def stream_reply(
        self, text: str, files: Sequence[tuple[str, bytes]] = (), attachments: Sequence[dict] = ()
    ) -> Iterator[str]:
        """Add the user's ``text`` (with ``files``' text, see ``new_user_message``) and yield the
        reply's text deltas as they arrive.

        Raises:
            ChatError: ``text`` is too long or a file cannot be read (nothing is added), or the
                provider failed (the user's message stays in ``messages``).
        """
        message = self.new_user_message(text, files, attachments)
        self.messages.append(message)
        try:
            history = self.history(message.model_text())
        except ChatError:
            self.messages.pop()
            raise
        self._merge_branch()
        return self._stream(history)

    def _resend(self, text: str) -> Iterator[str]:
        """The reply to the pending ``text``, with the history before it."""
        yield from self._stream(self.history(text))

    def _stream(self, history: list[ChatMessage]) -> Iterator[str]:
        def start() -> Iterator[str]:
            # With no usable LLM, build_llm raises the ProviderConfigError that says what is missing.
            llm = self.llm if self.llm is not None else build_llm(self.config)
            stream = llm.stream_chat(history)
            try:
                for chunk in stream:
                    yield chunk.delta or ""
            finally:  # closing it on Stop closes the HTTP stream: the server stops generating
                close_stream(stream)

        def keep_versions(message: Message) -> None:  # a regenerated reply keeps the one it replaces
            self._merge_branch()

        return self._relay(start, on_message=keep_versions)
