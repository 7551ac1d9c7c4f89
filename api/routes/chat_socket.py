"""The websocket of the token-session protocol: ``WS /chat?token=`` (tokens: ``api.routes.tokens``).

The client sends a text frame (its message); the server answers with JSON frames
``{"type": "delta", "turn", "text"}`` while the model streams, then ``{"type": "done", "turn",
"message"}``, or ``{"type": "error", "turn", "message"}``; ``turn`` names the message each frame
answers. With ``web_search=true`` in the URL, every message of the session is searched on the
web first, and the done frame's message carries the pages in its ``sources`` (each with ``url``;
skipped ones with ``skipped``). A message sent while a reply streams waits and is answered after it, in order (and one
still waiting when the client leaves is saved, unanswered, so nothing is lost). An unknown or
expired token, or one whose conversation was deleted, is closed with code 4401. The socket works in
the store of the token's owner (whose key asked for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from api.deps import ServerState, token_name
from api.errors import APIError, from_exception
from api.streaming import stream_in_thread
from api.turns import Asked, Outcome, memory_turn, queued_frames
from controller.chat_tokens import TokenError
from model.message import Message
from model.store import StoreError

router = APIRouter(tags=["tokens"])

#: Close code for a refused chat token (4000-4999 are the application's own).
CLOSE_BAD_TOKEN = 4401
Send = Callable[[dict[str, Any]], Awaitable[None]]


@router.websocket("/chat")
async def chat(websocket: WebSocket, token: str = "", web_search: bool = False) -> None:
    """The chat of a token: one text frame per user message, JSON frames back (module docstring);
    ``web_search`` searches the web before each answer."""
    state: ServerState = websocket.app.state.parley
    await websocket.accept()
    try:
        grant = state.tokens.get(token)
        state = state.for_owner(grant.owner)
        assistant = grant.assistant
    except (TokenError, StoreError) as exc:
        await websocket.close(code=CLOSE_BAD_TOKEN, reason=str(exc)[:120])
        return
    lock = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(frame)

    waiting: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()  # (turn id, conversation, text)
    answering = asyncio.create_task(_answer_in_order(state, waiting, send, web_search, assistant))
    try:
        await _receive(websocket, state, token, waiting, send)
    except WebSocketDisconnect:
        pass
    finally:
        answering.cancel()  # the reply streaming now is closed; the part that arrived is saved as incomplete
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await answering
        await run_in_threadpool(_keep_unanswered, state, waiting)


async def _receive(
    websocket: WebSocket, state: ServerState, token: str, waiting: asyncio.Queue[tuple[str, str, str]], send: Send
) -> None:
    """Take the client's messages, each with a new turn id, into ``waiting`` until it leaves (or its
    token stops working: closed with 4401); refuse a frame that is not a message, naming its turn."""
    while True:
        frame = await websocket.receive()
        if frame.get("type") == "websocket.disconnect":
            return
        text, turn_id = frame.get("text"), uuid.uuid4().hex
        try:
            name = await _live_conversation(state, token)
        except APIError as exc:
            await websocket.close(code=CLOSE_BAD_TOKEN, reason=exc.message[:120])
            return
        if text is None:
            await send({"type": "error", "turn": turn_id, "message": "Send your message as a text frame."})
        elif not text.strip():
            await send({"type": "error", "turn": turn_id, "message": "Your message is empty."})
        else:
            await waiting.put((turn_id, name, text))


async def _answer_in_order(
    state: ServerState,
    waiting: asyncio.Queue[tuple[str, str, str]],
    send: Send,
    web_search: bool = False,
    assistant: str | None = None,
) -> None:
    """Answer the messages in ``waiting`` one after the other, in the order they came (by the
    token's ``assistant``, when it has one)."""
    while True:
        turn_id, name, text = await waiting.get()
        await _turn(state, name, text, send, turn_id, web_search, assistant)


def _keep_unanswered(state: ServerState, waiting: asyncio.Queue[tuple[str, str, str]]) -> None:
    """The client left with messages still waiting: save them, so they wait in the conversation
    for an answer (the page offers Retry) instead of being lost."""
    while not waiting.empty():
        turn_id, name, text = waiting.get_nowait()
        with contextlib.suppress(Exception):  # the conversation may be gone; nothing else to do then
            if state.store.get(name) is not None:
                state.store.append(name, [replace(Message.user(text), turn_id=turn_id)])


async def _live_conversation(state: ServerState, token: str) -> str:
    """The conversation of a live token that still exists; a token of a deleted one is revoked.

    Raises:
        APIError: 401 when the token is unknown or expired, or its conversation was deleted.
    """
    name = token_name(state, token)
    if await run_in_threadpool(state.store.get, name) is None:
        state.tokens.revoke(name)
        raise APIError(
            401, "This conversation was deleted, so its chat token no longer works.", "invalid_session_token"
        )
    return name


async def _turn(
    state: ServerState,
    name: str,
    text: str,
    send: Send,
    turn_id: str,
    web_search: bool = False,
    assistant: str | None = None,
) -> None:
    """One turn on the socket: wait for a model slot, stream deltas, then the done frame (or an error
    frame), each carrying ``turn``. With REDIS_URL, a model worker answers and its frames are relayed,
    ``restart`` included."""
    outcome = Outcome()
    asked = Asked(turn_id, web_search, assistant)
    try:
        if state.redis is not None:
            async for frame in queued_frames(state, name, text, False, asked):
                await send({"turn": turn_id, **{k: v for k, v in frame.items() if k != "refused"}})
            return
        turn = lambda: memory_turn(state, name, text, outcome, False, asked)  # noqa: E731
        async with state.slots.slot():
            async for delta in stream_in_thread(turn):
                await send({"type": "delta", "turn": turn_id, "text": delta})
        assert outcome.message is not None
        done: dict[str, Any] = {"type": "done", "turn": turn_id, "message": outcome.message.to_dict()}
        if outcome.save_error:
            done["save_error"] = outcome.save_error
        await send(done)
    except (WebSocketDisconnect, RuntimeError):
        return  # the client is gone
    except Exception as exc:
        with contextlib.suppress(Exception):
            await send({"type": "error", "turn": turn_id, "message": from_exception(exc).message})
