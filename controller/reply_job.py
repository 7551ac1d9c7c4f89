"""A reply written in a thread of its own, so that it outlives the page run that started it.

A Streamlit page run ends whenever the user clicks anything, switches page or conversation, or
closes the tab. A reply that is read by the page run itself ends with it (stopped). A ``ReplyJob``
reads the ``controller.turn.Turn`` in its own thread instead: the reply goes on and is saved by its
chat whatever the page does, and any page run can draw it as it is now (``text``, ``calls``) or
stop it (``stop``). Stopping is seen between two deltas of the model (tens of milliseconds when
it streams); the turn then keeps the text so far, marked stopped, and closes the model's stream.
"""

from __future__ import annotations

import threading

from controller.engines import SourcesEvent, ToolCallEvent, TurnEvent
from controller.errors import ChatError
from controller.turn import Turn
from model.message import Message, Source, ToolCall


class ReplyJob:
    """One turn read to its end in a daemon thread.

    Args:
        turn: the turn to read (it saves its reply through its chat when it ends).
        prefix: text shown before the new text (the part of a continued reply already there).

    Attributes:
        prefix: as given.
        error: the turn's failure, as a sentence for the user (``ChatError``), once it failed.
    """

    def __init__(self, turn: Turn, prefix: str = "") -> None:
        self._turn, self.prefix = turn, prefix
        self._parts: list[str] = []
        self._calls: dict[tuple[str, int], ToolCall] = {}
        self._sources: tuple[Source, ...] = ()
        self.error: ChatError | None = None
        self._stop, self._done = threading.Event(), threading.Event()
        turn.listen(self._on_event)
        self._thread = threading.Thread(target=self._run, daemon=True, name="parley-reply")
        self._thread.start()

    @property
    def text(self) -> str:
        """The reply so far, after ``prefix``."""
        return self.prefix + "".join(self._parts)

    @property
    def calls(self) -> list[ToolCall]:
        """The tool calls so far, in order; one still running has ``result`` None."""
        return list(self._calls.values())

    @property
    def sources(self) -> tuple[Source, ...]:
        """The passages the reply is given (a knowledge-base reply), once retrieved."""
        return self._sources

    @property
    def searching(self) -> bool:
        """True while the web is being searched for the reply (its message asked for it, no page is
        reported yet and no text has come)."""
        return self._turn.message.web_search and not self._sources and not self._parts and not self.done

    @property
    def done(self) -> bool:
        """True once the reply ended (complete, stopped or failed) and was handed to its chat."""
        return self._done.is_set()

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was asked."""
        return self._stop.is_set()

    @property
    def reply(self) -> Message | None:
        """The reply as kept (complete or partial), once the job is done; None if none was kept."""
        return self._turn.reply if self.done else None

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the end; True if the job is done."""
        return self._done.wait(seconds)

    def stop(self, wait: float = 0.0) -> bool:
        """Stop the reply after the model's next delta, and wait up to ``wait`` seconds for it to be
        kept (marked stopped). Returns True if the job is done."""
        self._stop.set()
        return self._done.wait(wait)

    def _on_event(self, event: TurnEvent) -> None:
        if isinstance(event, ToolCallEvent):
            self._calls[(event.call.id, event.call.round)] = event.call
        elif isinstance(event, SourcesEvent):
            self._sources = event.sources

    def _run(self) -> None:
        try:
            for delta in self._turn:
                self._parts.append(delta)
                if self._stop.is_set():
                    break
        except ChatError as exc:
            self.error = exc
        except Exception as exc:  # a bug, not a provider failure (the turn explains those): still a sentence
            self.error = ChatError(f"The reply failed unexpectedly ({type(exc).__name__}).")
        finally:
            self._turn.close()  # after a stop: the text so far is kept, marked stopped
            self._done.set()
