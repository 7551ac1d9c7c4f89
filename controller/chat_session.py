"""What both chat pages share: the session's messages and relaying a streamed reply.

A reply is relayed delta by delta. When it ends, it is kept as a complete assistant message.
When it fails or is cut off (an error, a stop, a rerun), the text received so far is kept
marked ``incomplete``, never as a complete reply, and ``ChatError`` explains what happened.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from model.message import Message
from utils.llm import LLMConfig, explain_provider_error


class ChatError(Exception):
    """A reply could not be produced; ``str(error)`` is a sentence for the user."""


class ChatSession:
    """Messages of one conversation in one browser tab, and the model that answers.

    Attributes:
        config: the provider, model and limits in use.
        messages: the conversation so far, oldest first.
    """

    def __init__(self, config: LLMConfig, messages: list[Message] | None = None) -> None:
        self.config = config
        self.messages: list[Message] = list(messages or [])

    def _relay(self, deltas: Callable[[], Iterable[str]], on_message: Callable[[Message], None]) -> Iterator[str]:
        """Yield the deltas of a reply, then append the assistant message and call ``on_message``.

        Args:
            deltas: starts the request and returns the text deltas of the reply.
            on_message: called with each message appended (the assistant's, complete or not).

        Raises:
            ChatError: the provider failed; the partial text, if any, was kept as incomplete.
        """
        parts: list[str] = []
        try:
            for delta in deltas():
                if delta:
                    parts.append(delta)
                    yield delta
        except GeneratorExit:
            self._keep_partial(parts, on_message)
            raise
        except Exception as exc:  # any provider or transport failure becomes a user message
            kept = self._keep_partial(parts, on_message)
            message = explain_provider_error(exc, self.config)
            if kept:
                message += " The part of the reply that arrived is kept, marked as incomplete."
            raise ChatError(message) from exc
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
