"""The turns the routes run, each through the turn runner the pages use (``controller.chat.Chat``;
no second implementation of a turn): the memory page's ``AgentEngine`` for saved conversations and
chat tokens, ``PlainEngine`` for /v1 chat completions, and ``KnowledgeEngine`` for the
``kb:<name>`` models.

Each ``*_turn`` is a blocking generator of text deltas, meant for ``api.streaming.stream_in_thread``;
when it ends, ``outcome`` holds the assistant message (and any auto-save failure).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

from api.deps import ServerState
from api.errors import APIError, from_exception
from api.streaming import first_delta, stream_in_thread
from controller.chat import Chat
from controller.queue import arelay, new_turn, submit
from model.message import Message

T = TypeVar("T")


@dataclass
class Outcome:
    """What a finished turn produced.

    Attributes:
        message: the assistant message (complete), or None until the turn ends.
        save_error: the sentence of a failed auto-save (the reply was given but not saved), or None.
        extra: more for the answer (``sources``: the chunks a knowledge base gave, as dicts).
    """

    message: Message | None = None
    save_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Asked:
    """How a turn is to be answered besides the text.

    Attributes:
        turn_id: the id the user's message and the reply are saved with (a new one for a queued
            turn when None).
        web_search: search the web first; the reply's ``sources`` then list the pages.
        assistant: the id of the assistant that answers (its instructions, model and tools), or None.
    """

    turn_id: str | None = None
    web_search: bool = False
    assistant: str | None = None


def memory_turn(
    state: ServerState,
    name: str,
    text: str,
    outcome: Outcome,
    create: bool,
    asked: Asked = Asked(),
) -> Iterator[str]:
    """Answer ``text`` in the saved conversation ``name`` with the memory page's engine.

    The conversation is read from the store first (so the page's saves are seen), the user's
    message is saved before the model is called, and the reply is saved when it ends.

    Args:
        state: the server's state.
        name: the conversation.
        text: the user's message.
        outcome: filled in when the turn ends.
        create: True starts the conversation when it does not exist (a chat token's); False refuses.
        asked: the turn's id, a web search first, an assistant.

    Raises:
        APIError: 404 when ``name`` does not exist and ``create`` is False; 400 when web search is
            asked for and PARLEY_FETCH_ALLOW cannot be read.
        ChatError: the message was refused, the web search or the provider failed (the user's
            message is saved).
        StoreError: the store cannot be read.
    """
    web = state.web_search() if asked.web_search else None
    engine, tools = state.agent(asked.assistant, web)
    chat = Chat(engine, state.store)
    chat.set_web_search(asked.web_search)
    if state.store.get(name) is not None:
        chat.load(name)
    elif create:
        chat.save_as(name)
    else:
        raise APIError(404, f"There is no conversation called {name!r}.", "conversation_not_found")
    chat.set_tools(tools)
    chat.set_assistant(asked.assistant)
    turn = chat.send(text, turn_id=asked.turn_id)
    yield from turn
    outcome.message = turn.reply
    outcome.save_error = chat.save_error


async def queued_frames(
    state: ServerState,
    name: str,
    text: str,
    create: bool,
    asked: Asked = Asked(),
) -> AsyncIterator[dict[str, Any]]:
    """A turn through the Redis queue (REDIS_URL): save the user's message, add the turn to
    ``parley:turns``, then yield the worker's frames (``delta``, ``restart``, ``done``, ``error``).

    ``asked.turn_id`` names the turn (a new one when None); the saved messages carry it. The saved
    message keeps what is ``asked`` (a web search, an assistant), which the worker then applies.

    Raises:
        APIError: 404 when ``name`` does not exist and ``create`` is False.
        QueueError: no worker sent anything for PARLEY_QUEUE_TIMEOUT seconds.
        redis.RedisError: Redis cannot be reached (the user's message is saved all the same).
    """

    def enqueue() -> str:
        if not create and state.store.get(name) is None:
            raise APIError(404, f"There is no conversation called {name!r}.", "conversation_not_found")
        queued, message = new_turn(name, text, asked.turn_id, asked.web_search)
        message = replace(message, assistant_id=asked.assistant)
        state.store.append(name, [message])  # stored before any model is asked
        submit(state.redis_sync, queued, name, text, state.store.owner)
        return queued

    queued = await run_in_threadpool(enqueue)
    async for frame in arelay(state.redis, queued, state.settings.parley_queue_timeout):
        yield frame


@dataclass
class Started(Generic[T]):
    """A turn that holds a model slot and whose first item has arrived (see ``start_turn``).

    Attributes:
        first: the first delta, or None for an empty reply.
        rest: the deltas after it; iterate it (or call ``finish``) to release the slot.
    """

    state: ServerState
    first: T | None
    rest: AsyncIterator[T]

    async def finish(self) -> None:
        """Read the rest of the reply without relaying it, then release the slot.

        Raises:
            APIError: the turn failed after its first delta (its status and sentence).
        """
        try:
            async for _ in self.rest:
                pass
        except Exception as exc:
            raise from_exception(exc) from exc
        finally:
            self.state.slots.release()


async def start_turn(state: ServerState, produce: Callable[[], Iterator[T]]) -> Started[T]:
    """Wait for a model slot, start ``produce()`` in its thread and wait for its first delta, so that
    a failure before any text is an HTTP status (4xx/5xx) rather than an error inside a 200 stream.

    Raises:
        APIError: 429 when the queue for model slots is full; the turn's failure before its first
            delta (e.g. 400 message too long, 502/503/504 provider failures). The slot is released.
    """
    try:
        await state.slots.acquire()
    except Exception as exc:
        raise from_exception(exc) from exc
    deltas = stream_in_thread(produce)
    try:
        first = await first_delta(deltas)
    except Exception as exc:
        state.slots.release()
        raise from_exception(exc) from exc
    return Started(state, first, deltas)
