"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``, so that the openai
SDK and other OpenAI clients work unchanged.

Models: the configured provider's, plus ``kb:<name>`` for each knowledge base, which answers from it
and returns the chunks it used in ``parley_sources`` (on the response, and on the last chunk of a
stream). Nothing sent here is saved: the client keeps the conversation, as with OpenAI.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from llama_index.core.base.llms.types import MessageRole
from pydantic import BaseModel, Field

from api.deps import KB_PREFIX, ServerState, State, require_key
from api.errors import APIError, error_body, from_exception
from api.turns import Outcome, completion_turn, start_turn
from model.message import Message
from utils.providers import LLMConfig

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_key)])


class TextPart(BaseModel):
    """One part of a message's content (only text parts are accepted)."""

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """One message of a chat-completion request."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormat(BaseModel):
    """OpenAI's ``response_format``: ``text`` or ``json_object``."""

    type: Literal["text", "json_object"] = "text"


class ChatCompletionRequest(BaseModel):
    """Body of ``POST /v1/chat/completions`` (the fields Parley honours; others are ignored)."""

    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None


class ModelObject(BaseModel):
    """One model, as OpenAI's ``Model``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's ``ListModelsResponse``."""

    object: Literal["list"] = "list"
    data: list[ModelObject]


class AssistantMessageOut(BaseModel):
    """The message of a choice."""

    role: Literal["assistant"] = "assistant"
    content: str | None


class Choice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessageOut
    finish_reason: str


class ChatCompletion(BaseModel):
    """OpenAI's ``CreateChatCompletionResponse`` (streamed: ``chat.completion.chunk`` events instead);
    ``parley_sources`` holds a knowledge base's chunks for ``kb:<name>`` models."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    parley_sources: list[dict[str, Any]] | None = None


@router.get("/models", response_model=ModelList)
def list_models(state: State) -> ModelList:
    """The provider's models, then ``kb:<name>`` for each knowledge base."""
    config = state.config()
    ids = [(m, config.provider) for m in state.provider_models()]
    ids += [(f"{KB_PREFIX}{name}", "parley") for name in state.knowledge_bases.names()]
    return ModelList(data=[ModelObject(id=i, owned_by=o) for i, o in ids])


def _prepare(state: ServerState, body: ChatCompletionRequest) -> tuple[LLMConfig, list[Message], str]:
    """The LLMConfig, the history and the new user text of a request.

    Raises:
        APIError: 404 unknown model; 400 when the last message is not a non-empty user message.
    """
    known = state.provider_models()
    is_kb = body.model.startswith(KB_PREFIX) and body.model[len(KB_PREFIX) :] in state.knowledge_bases.names()
    if body.model not in known and not is_kb:
        raise APIError(
            404,
            f"The model {body.model!r} does not exist here; GET /v1/models lists the ones that do.",
            "model_not_found",
        )
    *earlier, last = body.messages
    if last.role != "user" or not last.text().strip():
        raise APIError(400, "The last message must be a non-empty message from the user.", "invalid_messages")
    system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer") and m.text())
    history = [Message(MessageRole(m.role), m.text()) for m in earlier if m.role in ("user", "assistant")]
    config = state.config(body.model)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    max_tokens = body.max_completion_tokens or body.max_tokens
    config = replace(
        config,
        system_prompt=system or config.system_prompt,
        temperature=config.temperature if body.temperature is None else body.temperature,
        max_tokens=max_tokens or config.max_tokens,
        stop=stop,
        json_mode=body.response_format is not None and body.response_format.type == "json_object",
    )
    return config, history, last.text()


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    response_model_exclude_unset=True,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With stream: true, chunk events."}},
)
async def chat_completions(body: ChatCompletionRequest, state: State) -> ChatCompletion | StreamingResponse:
    """A chat completion in OpenAI's format (``stream: true``: ``chat.completion.chunk`` events, then
    ``data: [DONE]``).

    Raises:
        APIError: 404 unknown model, 400 bad messages or a message too long, 429 busy, 502/503/504
            provider failures (OpenAI's error JSON).
    """
    config, history, text = await run_in_threadpool(_prepare, state, body)  # reads /models and the disk
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    outcome = Outcome()
    turn = await start_turn(state, lambda: completion_turn(state, config, history, text, outcome))
    if not body.stream:
        await turn.finish()
        assert outcome.message is not None
        answer: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": outcome.message.content},
                    "finish_reason": "stop",
                }
            ],
        }
        if body.model.startswith(KB_PREFIX):
            answer["parley_sources"] = outcome.extra.get("sources", [])
        return ChatCompletion.model_validate(answer)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        try:
            yield chunk({"role": "assistant", "content": turn.first or ""})
            async for delta in turn.rest:
                yield chunk({"content": delta})
            extra = {"parley_sources": outcome.extra.get("sources", [])} if body.model.startswith(KB_PREFIX) else {}
            yield chunk({}, "stop", **extra)
        except Exception as exc:
            error = from_exception(exc)
            yield f"data: {json.dumps(error_body(error.status, error.message, error.code))}\n\n"
        finally:
            state.slots.release()
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
