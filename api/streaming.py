"""Running the controllers' blocking, streamed turns under asyncio, and bounding model calls.

A turn (``MemoryChat.stream_reply`` and friends) is a synchronous generator that blocks on the
model's HTTP stream. ``stream_in_thread`` runs it in its own thread and hands its deltas to the
event loop as they arrive; when the client goes away, the generator is closed after its next
delta, which closes the model's HTTP stream and keeps the partial reply marked incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

T = TypeVar("T")
#: Longest wait, in seconds, for a stopped turn's thread to close the model's stream and keep the
#: partial reply (it stops at the next delta).
STOP_WAIT_SECONDS = 10.0
#: Seconds a client is told to wait (Retry-After) when every model slot and the queue are full.
RETRY_AFTER_SECONDS = 5


class Busy(Exception):
    """Every model slot is taken and the queue is full; ``str(error)`` is a sentence for the client."""


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


_DONE = object()


async def stream_in_thread(produce: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Yield the items of ``produce()``, which runs in a thread of its own, as they arrive (text
    deltas that arrived together are joined into one).

    Args:
        produce: makes the blocking generator of items (text deltas, or a /v1 answer's pieces),
            called in the thread, so that its file and network work never blocks the event loop.

    Raises:
        Exception: whatever ``produce()`` or its generator raised (e.g. ``ChatError``).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            deltas = produce()
            try:
                for delta in deltas:
                    put(delta)
                    if stop.is_set():
                        break
            finally:
                close = getattr(deltas, "close", None)
                if close is not None:
                    close()  # a stopped turn keeps its partial reply, marked incomplete
            put(_DONE)
        except BaseException as exc:  # handed to the event loop, which re-raises it
            put(_Failure(exc))

    thread = threading.Thread(target=work, daemon=True, name="parley-turn")
    thread.start()
    try:
        while True:
            item = await queue.get()
            # Deltas that arrived while the loop was busy go out together (never waits for more).
            while isinstance(item, str) and not queue.empty():
                following = queue.get_nowait()
                if not isinstance(following, str):
                    queue.put_nowait(following)  # the end or a failure: handled after this text
                    break
                item += following
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        if thread.is_alive():  # stopped early: let the turn keep its partial reply before going on
            await asyncio.get_running_loop().run_in_executor(None, thread.join, STOP_WAIT_SECONDS)


async def first_delta(deltas: AsyncIterator[T]) -> T | None:
    """Wait for the first delta of ``deltas`` (None when the reply is empty), so that a failure before
    any text becomes an HTTP status instead of an error inside a stream that already said 200.

    Raises:
        Exception: whatever the turn raised before its first delta.
    """
    try:
        return await anext(deltas)
    except StopAsyncIteration:
        return None


class ModelSlots:
    """At most ``concurrent`` model calls at once; up to ``queue_limit`` more wait, first come first served.

    Args:
        concurrent: PARLEY_API_MAX_CONCURRENT.
        queue_limit: PARLEY_API_MAX_QUEUE; one more is refused with ``Busy``.
    """

    def __init__(self, concurrent: int, queue_limit: int) -> None:
        self.concurrent = concurrent
        self.queue_limit = queue_limit
        self._semaphore = asyncio.Semaphore(concurrent)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Model calls waiting for a slot now."""
        return self._waiting

    async def acquire(self) -> None:
        """Wait for a slot (in arrival order).

        Raises:
            Busy: every slot is taken and ``queue_limit`` calls already wait.
        """
        if self._semaphore.locked() and self._waiting >= self.queue_limit:
            raise Busy(
                f"Parley is answering {self.concurrent} requests and {self._waiting} more are waiting; "
                f"try again in {RETRY_AFTER_SECONDS} s."
            )
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1

    def release(self) -> None:
        """Give a slot back (once per successful ``acquire``)."""
        self._semaphore.release()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``acquire`` for the duration of a ``with`` block.

        Raises:
            Busy: as ``acquire``.
        """
        await self.acquire()
        try:
            yield
        finally:
            self.release()
