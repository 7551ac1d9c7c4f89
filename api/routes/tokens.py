"""The tokens of the token-session websocket protocol: ``POST /token`` and ``GET /refresh_token``
(the socket itself, ``WS /chat``, is ``api.routes.chat_socket``).

A token names one saved conversation (it shows in the page's sidebar like any other).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.deps import State, check_name, require_key
from api.errors import APIError
from controller.chat_tokens import TokenError

router = APIRouter(tags=["tokens"])


class TokenRequest(BaseModel):
    """Body of ``POST /token``."""

    name: str = Field(min_length=1, max_length=200, description="The conversation's display name.")
    assistant: str | None = Field(
        default=None, max_length=100, description="The id of the assistant that answers (GET /assistants)."
    )


class TokenResponse(BaseModel):
    """A chat token and its lifetime in seconds."""

    token: str
    expires_in: int = Field(description="Seconds before the token expires (whole seconds).")
    name: str
    assistant: str | None = None


class RefreshResponse(TokenResponse):
    """A refreshed token, with the conversation's messages so far."""

    messages: list[dict[str, Any]]


@router.post("/token", dependencies=[Depends(require_key)], response_model=TokenResponse)
def issue_token(body: TokenRequest, state: State) -> TokenResponse:
    """A chat token for conversation ``name`` (made now if it does not exist, and then saved).

    Returns:
        ``{"token": "<uuid4>", "expires_in": <seconds>, "name": "<conversation>", "assistant"}``.

    Raises:
        APIError: 404 for an unknown assistant.
    """
    name = check_name(body.name)
    if body.assistant is not None:
        state.assistant(body.assistant)
    if state.store.get(name) is None:
        state.store.save(name, [])
    grant = state.tokens.issue(name, body.assistant)
    return TokenResponse(token=grant.token, expires_in=round(grant.expires_in()), name=name, assistant=grant.assistant)


@router.get("/refresh_token", dependencies=[Depends(require_key)], response_model=RefreshResponse)
def refresh_token(token: str, state: State) -> RefreshResponse:
    """Give a live token a full lifetime again; return it with the conversation's messages so far.

    Raises:
        APIError: 401 for an unknown or expired token.
    """
    try:
        grant = state.tokens.refresh(token)
    except TokenError as exc:
        raise APIError(401, str(exc), "invalid_session_token") from exc
    messages = state.store.get(grant.name) or []
    return RefreshResponse(
        token=grant.token,
        expires_in=round(grant.expires_in()),
        name=grant.name,
        assistant=grant.assistant,
        messages=[m.to_dict() for m in messages],
    )
