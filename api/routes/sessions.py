"""Seed 002's session protocol: ``POST /token``, ``GET /refresh_token`` and ``WS /chat``.

A token names one saved conversation (it shows in the page's sidebar like any other). On the
websocket the client sends a text frame (its message); the server answers with JSON frames
``{"type": "delta", "text"}`` while the model streams, then ``{"type": "done", "message"}``, or
``{"type": "error", "message"}``. An unknown or expired token is closed with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from api.deps import State, check_name, require_key, session_name
from api.errors import APIError, from_exception
from api.streaming import stream_in_thread
from api.turns import Outcome, memory_turn, queued_frames
from controller.sessions import SessionError

router = APIRouter(tags=["sessions"])

#: Close code for a refused session token (4000-4999 are the application's own).
CLOSE_BAD_TOKEN = 4401


class TokenRequest(BaseModel):
    """Body of ``POST /token``."""

    name: str = Field(min_length=1, max_length=200, description="The conversation's display name.")


class TokenResponse(BaseModel):
    """A session token and its lifetime in seconds."""

    token: str
    expires_in: float
    name: str


class RefreshResponse(TokenResponse):
    """A refreshed token, with the conversation's messages so far."""

    messages: list[dict[str, Any]]


@router.post("/token", dependencies=[Depends(require_key)], response_model=TokenResponse)
def issue_token(body: TokenRequest, state: State) -> TokenResponse:
    """Start a session in conversation ``name`` (made now if it does not exist, and then saved).

    Returns:
        ``{"token": "<uuid4>", "expires_in": <seconds>, "name": "<conversation>"}``.
    """
    name = check_name(body.name)
    if state.store.get(name) is None:
        state.store.save(name, [])
    session = state.tokens.issue(name)
    return TokenResponse(token=session.token, expires_in=session.expires_in(), name=name)


@router.get("/refresh_token", dependencies=[Depends(require_key)], response_model=RefreshResponse)
def refresh_token(token: str, state: State) -> RefreshResponse:
    """Give a live token a full lifetime again; return it with the conversation's messages so far.

    Raises:
        APIError: 401 for an unknown or expired token.
    """
    try:
        session = state.tokens.refresh(token)
    except SessionError as exc:
        raise APIError(401, str(exc), "invalid_session_token") from exc
    messages = state.store.get(session.name) or []
    return RefreshResponse(
        token=session.token,
        expires_in=session.expires_in(),
        name=session.name,
        messages=[m.to_dict() for m in messages],
    )


@router.websocket("/chat")
async def chat(websocket: WebSocket, token: str = "") -> None:
    """The session's chat: one text frame per user message, JSON frames back (module docstring)."""
    state = websocket.app.state.parley
    await websocket.accept()
    try:
        session_name(state, token)
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
                name = session_name(state, token)
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


async def _turn(state: Any, name: str, text: str, send: Any) -> None:
    """One turn on the socket: wait for a model slot, stream deltas, then the done frame (or an error
    frame). With REDIS_URL, a model worker answers and its frames are relayed, ``restart`` included."""
    outcome = Outcome()
    try:
        if state.redis is not None:
            async for frame in queued_frames(state, name, text, create=True):
                await send({k: v for k, v in frame.items() if k != "refused"})
            return
        async with state.slots.slot():
            async for delta in stream_in_thread(lambda: memory_turn(state, name, text, outcome, create=True)):
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
