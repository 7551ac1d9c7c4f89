"""A turn: one reply produced end to end, as an iterator of text deltas.

The turn asks its engine (``controller.engines``) for the reply and relays the deltas. A failure
before any text arrived is tried again as ``utils.provider_errors.retry_delay`` says (at most
``MAX_ATTEMPTS`` HTTP attempts per message: this is the only layer that retries). When the reply
ends it is handed over complete (``on_reply``; marked ``cut`` when the model stopped at the token
limit, finish reason ``length``); when it fails or is cut off (an error, Stop, a
rerun, a closed connection) the text received so far is handed over marked ``incomplete`` (and
``stopped`` when the reader stopped it), never as a complete reply, and ``ChatError`` says what
happened. Closing the turn (Stop) closes the model's HTTP stream at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace

from llama_index.core.base.llms.types import MessageRole

from controller.engines import ChatEngine, Listener, TurnRecord
from controller.errors import ChatError
from model.attachments import AttachmentSpace
from model.message import Message, utc_now_iso
from utils.provider_errors import explain_provider_error, is_fallback_worthy, retry_delay
from utils.web_search import WebSearchError

#: Providers reached over the network, for which "Answer with the local model instead" is offered.
REMOTE_PROVIDERS = ("groq", "openai", "openai_like")


class Turn(Iterator[str]):
    """One reply being produced: iterate it for the text deltas; close it to stop.

    Args:
        engine: what answers.
        history: the messages before ``message``.
        message: the user message being answered (already in the conversation).
        on_reply: called with the reply (complete, or partial and marked incomplete) once it exists.
        on_end: called once the turn is over, whatever happened.
        turn_id: the queued turn this reply answers (it is marked with it), or None.
        images: where the conversation's images are read (for a model that sees them) and a tool
            call's images are kept.

    Attributes:
        reply: the reply once it ended (complete or partial), else None.
        attempts: HTTP attempts made so far (1 to ``MAX_ATTEMPTS``).
        record: the tool calls and sources reported so far.
        raw_text: the reply's text as the model wrote it (the kept reply is trimmed of white space).
    """

    def __init__(
        self,
        engine: ChatEngine,
        history: Sequence[Message],
        message: Message,
        on_reply: Callable[[Message], None],
        on_end: Callable[[], None] = lambda: None,
        turn_id: str | None = None,
        images: AttachmentSpace | None = None,
    ) -> None:
        self._engine, self._history, self._message = engine, list(history), message
        self._on_reply, self._on_end, self._turn_id = on_reply, on_end, turn_id
        self.reply: Message | None = None
        self.attempts = 0
        self.raw_text = ""
        self.record = TurnRecord(images=images)
        self._deltas: Generator[str, None, None] = self._run()

    @property
    def message(self) -> Message:
        """The user message being answered."""
        return self._message

    def listen(self, listener: Listener) -> Turn:
        """Call ``listener`` with each tool call and the sources as they happen; returns this turn."""
        self.record.listeners.append(listener)
        return self

    def __next__(self) -> str:
        """The next text delta.

        Raises:
            StopIteration: the reply ended (``reply`` holds it).
            ChatError: the provider failed; the part that arrived, if any, was kept as incomplete.
        """
        return next(self._deltas)

    def close(self) -> None:
        """Stop the reply: the text so far is kept, marked stopped, and the model's stream is closed."""
        self._deltas.close()

    def _run(self) -> Generator[str, None, None]:
        parts: list[str] = []
        try:
            while True:
                self.attempts += 1
                self.record.reset()
                deltas: Iterator[str] = iter(())
                try:
                    deltas = iter(self._engine.stream(self._history, self._message, self.record))
                    for delta in deltas:
                        if delta:
                            parts.append(delta)
                            yield delta
                    break
                except GeneratorExit:  # the reader stopped: Stop, a rerun or a closed connection
                    _close(deltas)  # now, not when garbage is collected: the HTTP stream closes with it
                    self._keep("".join(parts), incomplete=True, stopped=True)
                    raise
                except Exception as exc:  # any provider or transport failure becomes a sentence
                    if self._retry_after(exc, bool(parts)):
                        continue
                    raise self._failure(exc, "".join(parts)) from exc
            self._keep("".join(parts))
        finally:
            self._on_end()

    def _retry_after(self, exc: Exception, has_text: bool) -> bool:
        """Wait and return True when the failed attempt is to be tried again."""
        delay = None if has_text else retry_delay(exc, self.attempts)
        if delay is None:
            return False
        time.sleep(delay)
        return True

    def _failure(self, exc: Exception, text: str) -> ChatError:
        """The ChatError for ``exc``, after keeping ``text`` as an incomplete reply."""
        kept = self._keep(text, incomplete=True)
        if isinstance(exc, WebSearchError):
            return ChatError(
                f"The web search failed: {exc} Your question is kept: try again, or answer it without the web.",
                web_failed=True,
            )
        config = self._engine.config
        message = explain_provider_error(exc, config)
        if kept:
            message += " The part of the reply that arrived is kept, marked as incomplete."
        return ChatError(message, can_fall_back=is_fallback_worthy(exc) and config.provider in REMOTE_PROVIDERS)

    def _keep(self, text: str, incomplete: bool = False, stopped: bool = False) -> bool:
        """Hand the reply over (an incomplete one only if it has text); True if it was."""
        self.raw_text = text
        text = text.strip()
        if incomplete and not text:
            return False
        record = self.record
        reply = Message(
            role=MessageRole.ASSISTANT,
            content=text,
            timestamp=utc_now_iso(),
            incomplete=incomplete,
            model=self._engine.config.model if record.answered_by_model else None,
            sources=tuple(record.sources),
            turn_id=self._turn_id,
            stopped=stopped,
            tool_calls=tuple(record.tool_calls),
            cut=not incomplete and record.finish_reason == "length",
        )
        self.reply = self._engine.reply_message(reply)
        self._on_reply(self.reply)
        return True


def _close(deltas: Iterator[str]) -> None:
    """Close a generator of deltas (and so whatever stream it reads); other iterators are left."""
    close = getattr(deltas, "close", None)
    if close is not None:
        close()


def with_turn_id(message: Message, turn_id: str | None) -> Message:
    """``message`` marked with the queued turn ``turn_id`` (unchanged when it is None)."""
    return message if turn_id is None else replace(message, turn_id=turn_id)
