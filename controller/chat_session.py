"""What both chat pages share: the session's messages, relaying a streamed reply with bounded
retries, Retry and fallback, and the context budget of the last request.

A reply is relayed delta by delta. When it ends, it is kept as a complete assistant message.
When it fails or is cut off (an error, a stop, a rerun), the text received so far is kept
marked ``incomplete``, never as a complete reply, and ``ChatError`` explains what happened.
A failure before any text arrived is retried as ``utils.llm.retry_delay`` says (at most
``MAX_ATTEMPTS`` HTTP attempts per message, this being the only layer that retries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from model.message import Message
from utils.llm import LLMConfig, explain_provider_error, is_fallback_worthy, retry_delay

#: Providers reached over the network, for which "Answer with the local model instead" is offered.
REMOTE_PROVIDERS = ("groq", "openai", "openai_like")


class ChatError(Exception):
    """A reply could not be produced; ``str(error)`` is a sentence for the user.

    Attributes:
        can_fall_back: True when answering with the local model instead is worth offering
            (a remote provider failed with a connection error or a server error).
        refused_text: the user's text when it was refused before being sent (too long), so the
            view can give it back; None otherwise (the text is then kept in the conversation).
    """

    def __init__(self, message: str, can_fall_back: bool = False, refused_text: str | None = None) -> None:
        super().__init__(message)
        self.can_fall_back = can_fall_back
        self.refused_text = refused_text


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """What went to the model for the last reply.

    Attributes:
        sent_messages: messages sent, counting the new one and the system prompt.
        sent_tokens: their size in tokens, as llama-index's tokenizer counts them.
        left_out: older messages left out to fit the context window.
        token_limit: tokens available for the prompt (context window minus room for the reply).
    """

    sent_messages: int
    sent_tokens: int
    left_out: int
    token_limit: int


class ChatSession:
    """Messages of one conversation in one browser tab, and the model that answers.

    Attributes:
        config: the provider, model and limits in use.
        messages: the conversation so far, oldest first.
        attempts: HTTP attempts made for the last message (1 to MAX_ATTEMPTS).
        budget: the ContextBudget of the last request, or None before the first.
    """

    def __init__(self, config: LLMConfig, messages: list[Message] | None = None) -> None:
        self.config = config
        self.messages: list[Message] = list(messages or [])
        self.attempts = 0
        self.budget: ContextBudget | None = None

    def pending_user_text(self) -> str | None:
        """The last user message if no complete reply follows it (what Retry sends), else None."""
        for message in reversed(self.messages):
            if message.role.value == "user":
                return message.content
            if not message.incomplete:
                return None
        return None

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on (subclasses rebuild their model here)."""
        self.config = config

    def stream_reply(self, text: str) -> Iterator[str]:
        """Add the user's ``text`` and return the reply's text deltas as they arrive (subclasses).

        Raises:
            ChatError: ``text`` was refused (nothing is added), or, while iterating, the provider failed.
        """
        raise NotImplementedError

    def retry(self, fallback: LLMConfig | None = None) -> Iterator[str]:
        """Send the last user message again (after a failure), optionally to ``fallback`` instead.

        Args:
            fallback: another model (the local one) for this reply only; None uses ``config``.

        Raises:
            ChatError: there is no message waiting for a reply, or the provider failed again.
        """
        text = self.pending_user_text()
        if text is None:
            raise ChatError("There is no message waiting for a reply.")
        original = self.config
        if fallback is not None:
            self.set_config(fallback)
        try:
            yield from self._resend(text)
        finally:
            if fallback is not None:
                self.set_config(original)

    def _resend(self, text: str) -> Iterator[str]:
        """Yield the reply to ``text``, the pending user message already in ``messages``."""
        raise NotImplementedError

    def _relay(
        self,
        start: Callable[[], Iterable[str]],
        on_message: Callable[[Message], None],
        before_retry: Callable[[], None] = lambda: None,
    ) -> Iterator[str]:
        """Yield the deltas of a reply, then append the assistant message and call ``on_message``.

        Args:
            start: makes one HTTP attempt and returns the text deltas of the reply.
            on_message: called with each message appended (the assistant's, complete or not).
            before_retry: called before another attempt, to reset state the failed one left.

        Raises:
            ChatError: the provider failed; the partial text, if any, was kept as incomplete.
        """
        parts: list[str] = []
        self.attempts = 0
        while True:
            self.attempts += 1
            try:
                for delta in start():
                    if delta:
                        parts.append(delta)
                        yield delta
                break
            except GeneratorExit:
                self._keep_partial(parts, on_message)
                raise
            except Exception as exc:  # any provider or transport failure becomes a user message
                delay = None if parts else retry_delay(exc, self.attempts)
                if delay is not None:
                    time.sleep(delay)
                    before_retry()
                    continue
                kept = self._keep_partial(parts, on_message)
                message = explain_provider_error(exc, self.config)
                if kept:
                    message += " The part of the reply that arrived is kept, marked as incomplete."
                fall_back = is_fallback_worthy(exc) and self.config.provider in REMOTE_PROVIDERS
                raise ChatError(message, can_fall_back=fall_back) from exc
        reply = Message.assistant("".join(parts).strip(), model=self.config.model)
        self.messages.append(reply)
        on_message(reply)

    def _keep_partial(self, parts: list[str], on_message: Callable[[Message], None]) -> bool:
        """Append the partial reply as an incomplete message; return True if there was any text."""
        text = "".join(parts).strip()
        if not text:
            return False
        partial = Message.assistant(text, incomplete=True, model=self.config.model)
        self.messages.append(partial)
        on_message(partial)
        return True
