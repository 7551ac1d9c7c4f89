"""The turn queue in Redis Streams, used when REDIS_URL is set.

The chat server saves the user's message (marked with a new ``turn_id``), then adds the turn to the
stream ``parley:turns`` (``XADD``) and relays the frames that appear on the turn's reply stream
``parley:reply:<turn_id>``. Model workers (``python -m worker``, as many as you like) read
``parley:turns`` in the consumer group ``parley-workers``; each answers one turn at a time through
the turn runner with the memory page's engine (``controller.chat``, ``AgentEngine``), publishes
``{"type": "delta"|"done"|"error"|"restart", ...}`` frames on the reply stream, saves the reply,
then acknowledges the turn (``XACK``).

A worker killed mid-turn leaves its entry pending; after ``claim_idle`` seconds another worker
claims it (``XAUTOCLAIM``), publishes a ``restart`` frame ("the model worker restarted; answering
again") and answers again. The save is idempotent by turn id: a turn whose complete reply is
already stored is not answered twice. A working worker renews its claim every few seconds, so a
long answer is never taken from a live worker. Reply streams expire ``REPLY_TTL`` seconds after
their last frame.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import redis
import redis.asyncio

from controller.assistants import AgentSetup
from controller.chat import Chat
from controller.engines import AgentEngine
from controller.errors import ChatError
from controller.web_search import WebSearch
from model.message import Message
from model.store import LOCAL_OWNER, BaseConversationStore, StoreError
from utils.providers import LLMConfig

TURNS = "parley:turns"
GROUP = "parley-workers"
REPLY_PREFIX = "parley:reply:"
#: Seconds a reply stream is kept after its last frame.
REPLY_TTL = 600
#: Entries kept in parley:turns (approximately; older acknowledged turns are trimmed).
TURNS_MAXLEN = 10_000
RESTART_SENTENCE = "The model worker restarted; answering again."


class QueueError(Exception):
    """Redis cannot be used for the queue; ``str(error)`` is a sentence for the user."""


def reply_key(turn_id: str) -> str:
    """The reply stream of a turn."""
    return REPLY_PREFIX + turn_id


def ensure_group(client: redis.Redis) -> None:
    """Create the consumer group (and the stream) if missing; an existing group is kept."""
    try:
        client.xgroup_create(TURNS, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def new_turn(name: str, text: str, turn_id: str | None = None, web_search: bool = False) -> tuple[str, Message]:
    """A turn id (``turn_id``, or a new one) and the user's message marked with it (and with
    ``web_search``: the worker searches the web before answering)."""
    turn_id = turn_id or uuid.uuid4().hex
    return turn_id, replace(Message.user(text), turn_id=turn_id, web_search=web_search)


def submit(client: redis.Redis, turn_id: str, name: str, text: str, owner: str = LOCAL_OWNER) -> str:
    """Add a turn of ``owner``'s conversation ``name`` to ``parley:turns`` (the user's message must
    already be saved); returns the entry id. The worker answers in that owner's part of the store."""
    entry = client.xadd(
        TURNS, {"turn_id": turn_id, "name": name, "text": text, "owner": owner}, maxlen=TURNS_MAXLEN, approximate=True
    )
    return str(entry)


Entry = tuple[str, dict[str, str]]


def _entries(read: Any) -> list[Entry]:
    """The entries of a one-stream ``XREAD``/``XREADGROUP`` answer in RESP2 form
    (``[[stream, [(id, fields), ...]]]``, or empty). redis-py's type covers RESP3's dict form too."""
    return [(str(entry_id), dict(fields)) for entry_id, fields in read[0][1]] if read else []


def answered(messages: list[Message], turn_id: str) -> Message | None:
    """The complete assistant reply already saved for ``turn_id``, if any."""
    for message in messages:
        if message.turn_id == turn_id and message.role.value == "assistant" and not message.incomplete:
            return message
    return None


class TurnWorker:
    """One model worker: answers the queued turns one at a time.

    Args:
        client: Redis (``decode_responses=True``).
        store: the conversation store (shared with the page and the chat server).
        config: the model to answer with.
        claim_idle: seconds a turn may stay unacknowledged before another worker takes it over
            (PARLEY_WORKER_CLAIM_IDLE).
        name: this consumer's name in the group; default ``<host>-<pid>``.
        web: the web search for turns whose message asks for one, or None (they then fail, saying so).
        agents: makes the agent of a turn whose message names an assistant, or None (answered as Parley).
    """

    def __init__(
        self,
        client: redis.Redis,
        store: BaseConversationStore,
        config: LLMConfig,
        claim_idle: float,
        name: str | None = None,
        web: WebSearch | None = None,
        agents: AgentSetup | None = None,
    ) -> None:
        self.client, self.store, self.config, self.claim_idle = client, store, config, claim_idle
        self.web, self.agents = web, agents
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        ensure_group(client)

    def run(self, stop: threading.Event, on_turn: Callable[[str], None] = lambda turn_id: None) -> None:
        """Answer turns until ``stop`` is set (checked at least every second)."""
        while not stop.is_set():
            try:
                self.step(on_turn)
            except (redis.ConnectionError, redis.TimeoutError):  # Redis restarting: wait, then go on
                stop.wait(1.0)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                ensure_group(self.client)  # Redis came back without its data: make the group again

    def step(self, on_turn: Callable[[str], None] = lambda turn_id: None, block_ms: int = 1000) -> bool:
        """Take over one stale turn, or read one new turn (waiting up to ``block_ms``), and answer it.

        Returns:
            True if a turn was answered.
        """
        _, claimed, _ = self.client.xautoclaim(TURNS, GROUP, self.name, int(self.claim_idle * 1000), "0-0", count=1)
        restarted = bool(claimed)
        entries = claimed
        if not entries:
            entries = _entries(self.client.xreadgroup(GROUP, self.name, {TURNS: ">"}, count=1, block=block_ms))
        if not entries:
            return False
        entry_id, fields = entries[0]
        on_turn(fields.get("turn_id", ""))
        self.answer(entry_id, fields, restarted)
        return True

    def _publish(self, turn_id: str, frame: dict[str, Any]) -> None:
        key = reply_key(turn_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(key, {"frame": json.dumps(frame, ensure_ascii=False)})
        pipe.expire(key, REPLY_TTL)
        pipe.execute()

    def answer(self, entry_id: str, fields: dict[str, str], restarted: bool) -> None:
        """Answer one turn, publish its frames, save the reply once, then acknowledge the entry."""
        turn_id, name = fields.get("turn_id", ""), fields.get("name", "")
        try:
            if restarted:
                self._publish(turn_id, {"type": "restart", "message": RESTART_SENTENCE})
            store = self.store.owned_by(fields.get("owner") or LOCAL_OWNER)  # entries from before owners: local
            self._answer(entry_id, turn_id, name, store)
        except StoreError as exc:
            self._publish(turn_id, {"type": "error", "message": str(exc), "refused": False})
        self.client.xack(TURNS, GROUP, entry_id)

    def _answer(self, entry_id: str, turn_id: str, name: str, store: BaseConversationStore) -> None:
        messages = store.get(name)
        if messages is None:
            self._publish(
                turn_id, {"type": "error", "message": f"The conversation {name!r} was deleted.", "refused": True}
            )
            return
        done = answered(messages, turn_id)
        if done is not None:  # saved by a worker that died before acknowledging: answer once only
            self._publish(turn_id, {"type": "done", "message": done.to_dict()})
            return
        asked = next((m for m in messages if m.turn_id == turn_id and m.is_user), None)
        assistant = asked.assistant_id if asked is not None else None
        engine, tools = AgentEngine.from_defaults(self.config, web=self.web), None
        try:
            if self.agents is not None and assistant is not None:
                engine, tools = self.agents.agent(self.config, assistant, self.web)
            chat = Chat(engine, store)
            turn = chat.answer_queued(name, turn_id, tools)
        except ChatError as exc:
            self._publish(turn_id, {"type": "error", "message": str(exc), "refused": True})
            return
        renewed = time.monotonic()
        try:
            for delta in turn:
                self._publish(turn_id, {"type": "delta", "text": delta})
                if time.monotonic() - renewed > self.claim_idle / 3:  # still alive: keep the turn
                    self.client.xclaim(TURNS, GROUP, self.name, 0, [entry_id], justid=True)
                    renewed = time.monotonic()
        except ChatError as exc:
            self._publish(turn_id, {"type": "error", "message": str(exc), "refused": exc.refused_text is not None})
            return
        reply = turn.reply.to_dict() if turn.reply is not None else None
        self._publish(turn_id, {"type": "done", "message": reply, "save_error": chat.save_error})


async def arelay(
    client: redis.asyncio.Redis, turn_id: str, timeout: float, poll_ms: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Yield the frames of a turn's reply stream until ``done`` or ``error`` (for the chat server).

    Raises:
        QueueError: no frame arrived for ``timeout`` seconds (no worker running?).
    """
    last, quiet_since = "0", time.monotonic()
    while True:
        entries = _entries(await client.xread({reply_key(turn_id): last}, block=poll_ms, count=100))
        if not entries:
            if time.monotonic() - quiet_since > timeout:
                raise QueueError(
                    f"No model worker answered within {timeout:g} s; is `make worker` (python -m worker) running?"
                )
            continue
        quiet_since = time.monotonic()
        for entry_id, fields in entries:
            last = entry_id
            frame = json.loads(fields["frame"])
            yield frame
            if frame["type"] in ("done", "error"):
                return
