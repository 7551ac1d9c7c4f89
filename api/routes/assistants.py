"""The assistants over HTTP (key-protected): ``GET /assistants``, ``GET /assistants/{id}``,
``POST /assistants`` (create), ``PUT /assistants/{id}`` (replace) and ``DELETE /assistants/{id}``.

Built-in assistants are listed and read like the others, and cannot be changed or deleted (409).
Use one over ``/v1`` as the model ``assistant:<id>``, or over the websocket with ``POST /token``'s
``assistant``.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from api.deps import State, require_key
from api.errors import APIError
from model.assistant import (
    DEFAULT,
    MAX_DESCRIPTION_CHARS,
    MAX_INSTRUCTIONS_CHARS,
    MAX_NAME_CHARS,
    MAX_STARTERS,
    Assistant,
)
from model.store import StoreError

router = APIRouter(prefix="/assistants", tags=["assistants"], dependencies=[Depends(require_key)])


class AssistantIn(BaseModel):
    """An assistant as a client writes it (``POST``, ``PUT``)."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="Unique, ignoring case.")
    emoji: str = Field(default="🤖", max_length=8)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    instructions: str = Field(default="", max_length=MAX_INSTRUCTIONS_CHARS, description="Its system prompt.")
    provider: str = Field(default=DEFAULT, description='"default" (the server\'s), local, groq, openai, openai_like.')
    model: str = Field(default=DEFAULT, max_length=200, description='A model id, or "default".')
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="null: the server's.")
    tools: list[str] = Field(
        default_factory=list, max_length=50, description="Tool ids; kb:<name> for a knowledge base."
    )
    json_mode: bool = False
    starters: list[str] = Field(default_factory=list, max_length=MAX_STARTERS, description="Conversation starters.")

    model_config = {"extra": "forbid"}

    def assistant(self, assistant_id: str = "") -> Assistant:
        """The Assistant with these fields and ``assistant_id``."""
        return Assistant(
            id=assistant_id,
            name=self.name,
            emoji=self.emoji,
            description=self.description,
            instructions=self.instructions,
            provider=self.provider,
            model=self.model,
            temperature=self.temperature,
            tools=tuple(self.tools),
            json_mode=self.json_mode,
            starters=tuple(self.starters),
        )


class AssistantOut(AssistantIn):
    """An assistant as stored: its id (``assistant:<id>`` over /v1), times, and whether it is built in."""

    id: str
    created: str | None = None
    updated: str | None = None
    built_in: bool = False

    @classmethod
    def of(cls, assistant: Assistant) -> AssistantOut:
        """The answer for ``assistant``."""
        return cls(**{**assistant.to_dict(), "built_in": assistant.built_in})


class AssistantList(BaseModel):
    """``GET /assistants``: the built-in ones, then the stored ones by name."""

    assistants: list[AssistantOut]


def _refused(exc: StoreError) -> APIError:
    """A refused write: 409 for a taken name or a built-in, 404 for a missing one, else 400."""
    text = str(exc)
    status = 409 if "already exists" in text or "built in" in text.lower() else 404 if "no assistant" in text else 400
    return APIError(status, text, "assistant_refused")


@router.get("", response_model=AssistantList)
def list_assistants(state: State) -> AssistantList:
    """Every assistant: the built-in ones, then the stored ones by name."""
    return AssistantList(assistants=[AssistantOut.of(a) for a in state.store.every_assistant()])


@router.get("/{assistant_id}", response_model=AssistantOut)
def get_assistant(assistant_id: str, state: State) -> AssistantOut:
    """One assistant.

    Raises:
        APIError: 404 when there is none.
    """
    return AssistantOut.of(state.assistant(assistant_id))


@router.post("", status_code=201, response_model=AssistantOut)
def create_assistant(body: AssistantIn, state: State) -> AssistantOut:
    """Create an assistant; its id is made from its name.

    Raises:
        APIError: 409 when the name is taken, 400 when a field is not valid.
    """
    try:
        return AssistantOut.of(state.store.create_assistant(body.assistant()))
    except StoreError as exc:
        raise _refused(exc) from exc


@router.put("/{assistant_id}", response_model=AssistantOut)
def update_assistant(assistant_id: str, body: AssistantIn, state: State) -> AssistantOut:
    """Replace an assistant's fields (its id and creation time stay).

    Raises:
        APIError: 404 when there is none, 409 for a built-in or a taken name, 400 for a bad field.
    """
    old = state.assistant(assistant_id)
    try:
        return AssistantOut.of(state.store.update_assistant(replace(body.assistant(assistant_id), created=old.created)))
    except StoreError as exc:
        raise _refused(exc) from exc


@router.delete("/{assistant_id}", status_code=204)
def delete_assistant(assistant_id: str, state: State) -> Response:
    """Delete an assistant; its conversations stay and go on with the default.

    Raises:
        APIError: 404 when there is none, 409 for a built-in.
    """
    try:
        state.store.delete_assistant(assistant_id)
    except StoreError as exc:
        raise _refused(exc) from exc
    return Response(status_code=204)
