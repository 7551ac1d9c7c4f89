"""The saved conversations over HTTP: the page's store, lock, backups and error sentences.

``GET /conversations`` (paged, newest activity first), ``POST /conversations`` (create),
``GET /conversations/{name}``, ``POST /conversations/{name}/messages`` (one turn; ``stream: true``
answers with Server-Sent Events carrying the websocket's frames), ``PATCH`` (rename) and ``DELETE``
(after a backup).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import ServerState, State, check_name, require_key
from api.errors import APIError, from_exception
from api.turns import Asked, Outcome, memory_turn, queued_frames, start_turn
from model.message import Message
from model.store import last_activity

router = APIRouter(prefix="/conversations", tags=["conversations"], dependencies=[Depends(require_key)])


class NewConversation(BaseModel):
    """Body of ``POST /conversations``."""

    name: str = Field(min_length=1, max_length=200)


class Rename(BaseModel):
    """Body of ``PATCH /conversations/{name}``."""

    name: str = Field(min_length=1, max_length=200, description="The new name.")


class UserMessage(BaseModel):
    """Body of ``POST /conversations/{name}/messages``."""

    content: str = Field(min_length=1, description="The user's message.")
    stream: bool = Field(default=False, description="True answers with Server-Sent Events.")
    web_search: bool = Field(
        default=False,
        description="True searches the web first; the reply's `sources` list the pages (with `url`; "
        "those not used with `skipped`, the reason).",
    )


class ConversationSummary(BaseModel):
    """One conversation in a list: its name, its number of messages and its newest message's time."""

    name: str
    messages: int = Field(description="How many messages it holds.")
    last_activity: str | None = Field(description="The newest message's time (ISO 8601, UTC), or null.")


class ConversationPage(BaseModel):
    """A page of the conversation list, newest activity first."""

    data: list[ConversationSummary]
    total: int
    offset: int
    limit: int


class ConversationMessages(BaseModel):
    """A conversation with its messages in the conversations.json format."""

    name: str
    messages: list[dict[str, Any]] = Field(description='Each {"role", "content", ...} as stored.')


class TurnResult(BaseModel):
    """The answer to one turn: the assistant message as stored, and a failed auto-save's sentence."""

    message: dict[str, Any]
    save_error: str | None = None


def _summary(name: str, messages: list[Message]) -> ConversationSummary:
    return ConversationSummary(name=name, messages=len(messages), last_activity=last_activity(messages) or None)


@router.get("", response_model=ConversationPage)
def list_conversations(
    state: State, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200)
) -> ConversationPage:
    """The conversations, newest activity first (``messages`` is a count; ``last_activity`` an ISO
    8601 time or null)."""
    page, total = state.store.summaries(offset, limit)
    return ConversationPage(
        data=[
            ConversationSummary(name=s.name, messages=s.messages, last_activity=s.last_activity or None) for s in page
        ],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.post("", status_code=201, response_model=ConversationSummary)
def create_conversation(body: NewConversation, state: State) -> ConversationSummary:
    """Start an empty conversation called ``name``.

    Raises:
        APIError: 400 for a name the API refuses, 409 when the name is taken.
    """
    name = check_name(body.name)
    if state.store.get(name) is not None:
        raise APIError(409, f"A conversation called {name!r} already exists.", "conversation_exists")
    state.store.save(name, [])
    return _summary(name, [])


def _existing(state: ServerState, name: str) -> list[Message]:
    messages = state.store.get(name)
    if messages is None:
        raise APIError(404, f"There is no conversation called {name!r}.", "conversation_not_found")
    return messages


@router.get("/{name}", response_model=ConversationMessages)
def get_conversation(name: str, state: State) -> ConversationMessages:
    """The conversation's messages in the conversations.json format."""
    return ConversationMessages(name=name, messages=[m.to_dict() for m in _existing(state, name)])


@router.patch("/{name}", response_model=ConversationSummary)
def rename_conversation(name: str, body: Rename, state: State) -> ConversationSummary:
    """Rename ``name`` (a backup is kept); chat tokens on it follow the rename.

    Raises:
        APIError: 404 for an unknown conversation, 400 for a refused name, 409 for a taken one.
    """
    messages = _existing(state, name)
    new = check_name(body.name)
    if new != name and state.store.get(new) is not None:
        raise APIError(409, f"A conversation called {new!r} already exists; pick another name.", "conversation_exists")
    state.store.rename(name, new)
    state.tokens.rename(name, new)
    return _summary(new, messages)


@router.delete("/{name}", status_code=204)
def delete_conversation(name: str, state: State) -> Response:
    """Delete ``name`` and revoke its chat tokens; the file store keeps a backup first (Restore from
    backup on the page)."""
    _existing(state, name)
    state.store.delete(name)
    state.tokens.revoke(name)  # a token of the deleted conversation must not bring it back
    return Response(status_code=204)


@router.post(
    "/{name}/messages",
    response_model=TurnResult,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "A TurnResult, or events with stream: true."}
    },
)
async def add_message(name: str, body: UserMessage, state: State) -> TurnResult | StreamingResponse:
    """One turn: the user's message is saved, the memory page's agent answers, the reply is saved.

    Returns:
        ``{"message": {"role": "assistant", "content", "model", ...}}``, or with ``stream: true`` an
        event stream of ``{"type": "delta", "text"}`` then ``{"type": "done", "message"}`` (or
        ``{"type": "error", "message"}``).

    Raises:
        APIError: 404 unknown conversation, 400 message too long, 429 busy, 502/503/504 provider failures.
    """
    if not body.content.strip():
        raise APIError(400, "Your message is empty.", "empty_message")
    if state.redis is not None:
        return await _queued_turn(state, name, body)
    if await run_in_threadpool(state.store.get, name) is None:
        raise APIError(404, f"There is no conversation called {name!r}.", "conversation_not_found")
    outcome = Outcome()
    turn = await start_turn(
        state,
        lambda: memory_turn(state, name, body.content, outcome, create=False, asked=Asked(web_search=body.web_search)),
    )
    if not body.stream:
        await turn.finish()
        assert outcome.message is not None
        return TurnResult(message=outcome.message.to_dict(), save_error=outcome.save_error)

    async def events() -> AsyncIterator[str]:
        try:
            if turn.first is not None:
                yield _event({"type": "delta", "text": turn.first})
            async for delta in turn.rest:
                yield _event({"type": "delta", "text": delta})
            assert outcome.message is not None
            yield _event({"type": "done", "message": outcome.message.to_dict(), "save_error": outcome.save_error})
        except Exception as exc:
            yield _event({"type": "error", "message": from_exception(exc).message})
        finally:
            state.slots.release()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _queued_turn(state: ServerState, name: str, body: UserMessage) -> TurnResult | StreamingResponse:
    """The turn through the Redis queue: a worker answers; its frames become the answer or the events."""
    frames = queued_frames(state, name, body.content, create=False, asked=Asked(web_search=body.web_search))
    try:
        first = await anext(frames)
    except StopAsyncIteration:
        first = {"type": "error", "message": "The model worker sent nothing.", "refused": False}
    except Exception as exc:
        raise from_exception(exc) from exc

    def failure(frame: dict[str, Any]) -> APIError:
        return APIError(400 if frame.get("refused") else 502, frame["message"], "turn_failed")

    if not body.stream:
        frame = first
        try:
            while frame["type"] not in ("done", "error"):
                frame = await anext(frames)
        except Exception as exc:
            raise from_exception(exc) from exc
        if frame["type"] == "error":
            raise failure(frame)
        return TurnResult(message=frame["message"], save_error=frame.get("save_error"))
    if first["type"] == "error":
        raise failure(first)

    async def events() -> AsyncIterator[str]:
        yield _event(first)
        try:
            async for frame in frames:
                yield _event({k: v for k, v in frame.items() if k != "refused"})
        except Exception as exc:
            yield _event({"type": "error", "message": from_exception(exc).message})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event(data: dict[str, Any]) -> str:
    """One Server-Sent Event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
