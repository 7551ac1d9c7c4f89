"""The OpenAI-compatible API: ``GET /v1/models``, ``GET /v1/models/{id}`` and
``POST /v1/chat/completions``, so that the openai SDK and other OpenAI clients work unchanged.

Models: the configured provider's, plus ``kb:<name>`` for each knowledge base, which answers from it
and returns the chunks it used in ``parley_sources`` (on the response, and on the last chunk of a
stream). Nothing sent here is saved: the client keeps the conversation, as with OpenAI. What a
request asks is honoured or refused with a 400 naming the field (``api.completions``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.completions import Assembly, Item, Prepared, answer_items, prepare, unknown_model, url_citations
from api.deps import ASSISTANT_PREFIX, KB_PREFIX, ServerState, State, require_key
from api.errors import error_body, from_exception
from api.openai_models import ChatCompletion, ChatCompletionRequest, ModelList, ModelObject
from api.turns import Started, start_turn
from controller.engines import ChunkEvent

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_key)])


def _models(state: ServerState) -> list[ModelObject]:
    config = state.config()
    ids = [(m, config.provider) for m in state.provider_models()]
    ids += [(f"{KB_PREFIX}{name}", "parley") for name in state.knowledge_bases.names()]
    ids += [(f"{ASSISTANT_PREFIX}{a.id}", "parley") for a in state.store.every_assistant()]
    return [ModelObject(id=i, owned_by=o) for i, o in ids]


@router.get("/models", response_model=ModelList)
def list_models(state: State) -> ModelList:
    """The provider's models, then ``kb:<name>`` for each knowledge base and ``assistant:<id>`` for
    each assistant."""
    return ModelList(data=_models(state))


@router.get("/models/{model_id:path}", response_model=ModelObject)
def get_model(model_id: str, state: State) -> ModelObject:
    """One model of ``GET /v1/models``.

    Raises:
        APIError: 404 when there is no such model.
    """
    for model in _models(state):
        if model.id == model_id:
            return model
    raise unknown_model(model_id)


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
        APIError: 404 unknown model, 400 a field or message that cannot be honoured or a message too
            long, 429 busy, 502/503/504 provider failures (OpenAI's error JSON).
    """
    prepared = await run_in_threadpool(prepare, state, body)  # reads /models and the disk
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    turn = await start_turn(state, lambda: answer_items(state, prepared))
    if not body.stream:
        return await _whole(turn, prepared, head)
    usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _chunks(turn, prepared, head, usage, state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _whole(turn: Started[Item], prepared: Prepared, head: dict[str, Any]) -> ChatCompletion:
    """The non-streamed answer: every choice's pieces put together."""
    assembly = Assembly()
    try:
        if turn.first is not None:
            assembly.add(*turn.first)
        async for index, event in turn.rest:
            assembly.add(index, event)
    except Exception as exc:
        raise from_exception(exc) from exc
    finally:
        turn.state.slots.release()
    usage = await run_in_threadpool(assembly.counted_usage, prepared)
    choices = []
    for index in range(prepared.choices):
        calls = assembly.tool_calls(index)
        content = assembly.contents.get(index) or (None if calls else "")
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        if prepared.web_share is not None:
            message["annotations"] = url_citations(content or "", assembly.sources)
        finish = assembly.finish.get(index) or ("tool_calls" if calls else "stop")
        choices.append(
            {"index": index, "message": message, "finish_reason": finish, "logprobs": assembly.logprobs.get(index)}
        )
    answer: dict[str, Any] = {**head, "object": "chat.completion", "choices": choices, "usage": usage}
    if prepared.knowledge_base is not None or prepared.web_share is not None:
        answer["parley_sources"] = assembly.sources
    return ChatCompletion.model_validate(answer)


async def _chunks(
    turn: Started[Item], prepared: Prepared, head: dict[str, Any], include_usage: bool, state: ServerState
) -> AsyncIterator[str]:
    """The streamed answer: a chunk per piece of each choice, the choice's role first; with
    ``include_usage`` a last chunk with the usage and no choices; then ``data: [DONE]``."""
    assembly = Assembly()
    started: set[int] = set()

    def chunk(index: int, event: ChunkEvent) -> str:
        delta = dict(event.delta)
        if index not in started:
            started.add(index)
            delta = {"role": "assistant", "content": "", **delta}
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": event.finish_reason}
        if event.logprobs is not None:
            choice["logprobs"] = event.logprobs
        sourced = prepared.knowledge_base is not None or prepared.web_share is not None
        extra = {"parley_sources": assembly.sources} if event.finish_reason and sourced else {}
        if event.finish_reason and prepared.web_share is not None:  # the citations, with the last piece
            delta["annotations"] = url_citations(assembly.contents.get(index, ""), assembly.sources)
        return _event({**head, "object": "chat.completion.chunk", "choices": [choice], **extra})

    try:
        items = [turn.first] if turn.first is not None else []
        async for item in _then(items, turn.rest):
            index, event = item
            assembly.add(index, event)
            if isinstance(event, ChunkEvent) and (event.delta or event.finish_reason or event.logprobs):
                yield chunk(index, event)
        if include_usage:
            usage = await run_in_threadpool(assembly.counted_usage, prepared)
            yield _event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    except Exception as exc:
        error = from_exception(exc)
        yield _event(error_body(error.status, error.message, error.code, error.param))
    finally:
        state.slots.release()
    yield "data: [DONE]\n\n"


async def _then(first: list[Any], rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    for item in first:
        yield item
    async for item in rest:
        yield item


def _event(data: dict[str, Any]) -> str:
    """One Server-Sent Event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
