"""The websocket of the token-session protocol: ``WS /chat?token=`` (tokens: ``api.routes.tokens``).

The client sends a text frame (its message); the server answers with JSON frames
``{"type": "delta", "text"}`` while the model streams, then ``{"type": "done", "message"}``, or
``{"type": "error", "message"}``. An unknown or expired token is closed with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from api.deps import ServerState, token_name
from api.errors import APIError, from_exception
from api.streaming import stream_in_thread
from api.turns import Outcome, memory_turn, queued_frames

router = APIRouter(tags=["tokens"])

#: Close code for a refused chat token (4000-4999 are the application's own).
CLOSE_BAD_TOKEN = 4401
Send = Callable[[dict[str, Any]], Awaitable[None]]


@router.websocket("/chat")
async def chat(websocket: WebSocket, token: str = "") -> None:
    """The chat of a token: one text frame per user message, JSON frames back (module docstring)."""
    state: ServerState = websocket.app.state.parley
    await websocket.accept()
    try:
        token_name(state, token)
    except APIError as exc:
        await websocket.close(code=CLOSE_BAD_TOKEN, reason=exc.message[:120])
        return
    lock = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(frame)

    turn: asyncio.Task[None] | None = None
    try:
        while True:
            frame = await websocket.receive()
            if frame.get("type") == "websocket.disconnect":
                break
            text = frame.get("text")
            try:
                name = await _live_conversation(state, token)
            except APIError as exc:
                await websocket.close(code=CLOSE_BAD_TOKEN, reason=exc.message[:120])
                break
            if text is None:
                await send({"type": "error", "message": "Send your message as a text frame."})
            elif not text.strip():
                await send({"type": "error", "message": "Your message is empty."})
            elif turn is not None and not turn.done():
                await send(
                    {"type": "error", "message": "A reply is still streaming; send your next message when it is done."}
                )
            else:
                turn = asyncio.create_task(_turn(state, name, text, send))
    except WebSocketDisconnect:
        pass
    finally:
        if turn is not None and not turn.done():
            turn.cancel()  # the model's stream is closed; the part that arrived is saved as incomplete
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await turn


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


async def _turn(state: ServerState, name: str, text: str, send: Send) -> None:
    """One turn on the socket: wait for a model slot, stream deltas, then the done frame (or an error
    frame). With REDIS_URL, a model worker answers and its frames are relayed, ``restart`` included."""
    outcome = Outcome()
    try:
        if state.redis is not None:
            async for frame in queued_frames(state, name, text, create=False):
                await send({k: v for k, v in frame.items() if k != "refused"})
            return
        async with state.slots.slot():
            async for delta in stream_in_thread(lambda: memory_turn(state, name, text, outcome, create=False)):
                await send({"type": "delta", "text": delta})
        assert outcome.message is not None
        done: dict[str, Any] = {"type": "done", "message": outcome.message.to_dict()}
        if outcome.save_error:
            done["save_error"] = outcome.save_error
        await send(done)
    except (WebSocketDisconnect, RuntimeError):
        return  # the client is gone
    except Exception as exc:
        with contextlib.suppress(Exception):
            await send({"type": "error", "message": from_exception(exc).message})
