"""``POST /v1/chat/completions`` behind the route: what a client sends is honoured or refused with a
400 naming the field (``prepare``), each choice is answered through the turn runner
(``controller.turn.Turn``) with the completion engine or a knowledge base (``answer_items``), and the
pieces become OpenAI's answer (``Assembly``).

For the provider's own models the client's tools, tool choice, sampling fields, response format and
logprobs go to the provider, and its tool calls come back for the client to run, as with OpenAI.
For ``kb:<name>`` models Parley answers from the knowledge base itself, so a client's tools are
refused. ``n`` up to ``MAX_CHOICES`` is answered one choice after the other.

For ``assistant:<id>`` models Parley's agent answers with the assistant's instructions (before the
client's own system message), model and tools, run server-side, so a client's tools are refused.

With ``web_search_options`` the web is searched for the last user message first
(``controller.web_search``); the answer carries OpenAI's ``url_citation`` annotations
(``url_citations``) and the pages in ``parley_sources``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock

from api.deps import ASSISTANT_PREFIX, KB_PREFIX, ServerState
from api.errors import APIError
from api.openai_models import ChatCompletionRequest, ChatMessageIn, TextPart
from controller.chat import Chat
from controller.engines import ChunkEvent, CompletionEngine, KnowledgeEngine, TurnEvent
from controller.turn import Turn
from controller.web_search import CONTEXT_SHARES, citations
from model.conversation import Conversation
from model.message import Message, Source
from utils.images import ImageError, clean_image
from utils.knowledge_bases import KnowledgeBaseError
from utils.ocr import OcrFailed, OcrUnavailable, image_text
from utils.providers import LLMConfig, provider_name, sees_images
from utils.token_count import count_tokens

#: Most choices (``n``) one request may ask for; each is answered in turn.
MAX_CHOICES = 4
#: The request fields each provider takes besides model, messages, temperature, max tokens, stop and
#: stream (from each provider's API reference; llama-cpp-python's server for ``local``). An
#: OpenAI-compatible server (``openai_like``) is given them all: it refuses what it cannot do.
PROVIDER_FIELDS: dict[str, frozenset[str]] = {
    "local": frozenset(
        {
            "top_p",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "logprobs",
            "top_logprobs",
            "tools",
            "tool_choice",
            "response_format",
            "user",
        }
    ),  # fmt: skip
    "groq": frozenset(
        {
            "top_p",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "user",
        }
    ),  # fmt: skip
}
#: Fields passed on to the provider as they are.
PASSED_FIELDS = (
    "top_p", "seed", "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "tool_choice",
    "parallel_tool_calls", "user",
)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """A checked request: the config to answer with, the messages, the fields for the provider,
    the knowledge base's name (``kb:<name>`` models), the number of choices, the messages' texts and,
    with ``web_search_options``, the share of the prompt the web passages may take."""

    config: LLMConfig
    messages: list[ChatMessage]
    fields: dict[str, Any]
    knowledge_base: str | None
    choices: int
    texts: list[str]
    web_share: float | None = None
    assistant: str | None = None

    @property
    def own_answer(self) -> bool:
        """True when Parley answers itself (a knowledge base, an assistant), not the provider as asked."""
        return self.knowledge_base is not None or self.assistant is not None


#: One piece of an answer: the choice's index and what was reported.
Item = tuple[int, TurnEvent]


def unknown_model(model: str) -> APIError:
    """The 404 for a model that is not offered here."""
    return APIError(
        404, f"The model {model!r} does not exist here; GET /v1/models lists the ones that do.", "model_not_found"
    )


def _refuse(field_name: str, why: str) -> APIError:
    return APIError(400, f"`{field_name}`: {why}", "unsupported_parameter", param=field_name)


def _set_fields(body: ChatCompletionRequest) -> list[str]:
    """The optional fields the client set (to a value other than None)."""
    return [name for name in body.model_fields_set if getattr(body, name) is not None]


def check_messages(messages: list[ChatMessageIn], images: bool = False) -> None:
    """Refuse what no model here can answer: images where they are not taken (``images`` False: a
    knowledge base or an assistant), a final assistant message (a prefill), a tool result without the
    call it answers.

    Raises:
        APIError: 400 naming the problem.
    """
    if not images and any(m.has_images() for m in messages):
        raise APIError(
            400,
            "Images are answered by the provider's own models only, not by kb: or assistant: models.",
            "images_not_supported",
        )
    if messages[-1].role == "assistant":
        raise _refuse("messages", "a final assistant message (a prefill) is not supported by this provider")
    if any(m.role == "tool" and not m.tool_call_id for m in messages):
        raise _refuse("messages", "a tool message needs the `tool_call_id` of the call it answers")


def chat_messages(messages: list[ChatMessageIn], vision: bool = False) -> list[ChatMessage]:
    """The request's messages as llama-index ChatMessages, as its OpenAI classes send them. Image
    parts (base64 data URLs) are checked and cleaned (``utils.images``); a model that sees images
    (``vision``) gets them as images, another the text OCR reads in them.

    Raises:
        APIError: 400 for an image that is not a data URL, not a usable image, or cannot be read
            as text here (no OCR).
    """
    out = []
    count = 0
    for message in messages:
        role = MessageRole.SYSTEM if message.role == "developer" else MessageRole(message.role)
        extra: dict[str, Any] = {}
        if message.tool_calls:
            extra["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        if message.tool_call_id:
            extra["tool_call_id"] = message.tool_call_id
        if message.has_images() and isinstance(message.content, list):
            blocks: list[TextBlock | ImageBlock] = []
            for part in message.content:
                if isinstance(part, TextPart):
                    blocks.append(TextBlock(text=part.text))
                    continue
                count += 1
                blocks.append(_image_block(part.image_url, count, vision))
            out.append(ChatMessage(role=role, blocks=blocks, additional_kwargs=extra))
            continue
        content = message.text() if message.content is not None else None
        out.append(ChatMessage(role=role, content=content, additional_kwargs=extra))
    return out


def _image_block(image_url: dict[str, Any], number: int, vision: bool) -> TextBlock | ImageBlock:
    """Image ``number`` of a request as an image block (``vision``) or its OCR text.

    Raises:
        APIError: 400 as ``chat_messages`` says.
    """
    name = f"image {number}"
    url = image_url.get("url")
    header, _, encoded = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (header.startswith("data:image/") and header.endswith(";base64")):
        raise APIError(
            400,
            f"{name} must be a base64 data URL (data:image/png;base64,...); links are not fetched.",
            "invalid_image",
        )
    try:
        image = clean_image(name, base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:  # ImageError is a ValueError
        text = str(exc) if isinstance(exc, ImageError) else f"{name} is not valid base64."
        raise APIError(400, text, "invalid_image") from exc
    if vision:
        return ImageBlock(image=image.data, image_mimetype=image.mime)
    try:
        return TextBlock(text=f"[Image {number}, read as text]\n{image_text(image.data, name) or '(no text found)'}")
    except (OcrUnavailable, OcrFailed) as exc:
        raise APIError(400, f"This model cannot see images, and {exc}", "images_not_supported") from exc


def _provider_fields(body: ChatCompletionRequest, config: LLMConfig) -> dict[str, Any]:
    """The fields for the provider, each checked against what it takes (``PROVIDER_FIELDS``).

    Raises:
        APIError: 400 naming a field the provider does not take.
    """
    takes = PROVIDER_FIELDS.get(config.provider)
    wanted = [name for name in _set_fields(body) if name in (*PASSED_FIELDS, "tools", "response_format")]
    for name in wanted:
        if takes is not None and name not in takes:
            raise _refuse(name, f"{provider_name(config.provider)} does not take this field")
    fields: dict[str, Any] = {name: _plain(getattr(body, name)) for name in wanted if name in PASSED_FIELDS}
    if body.tools:
        fields["tools"] = [tool.model_dump(exclude_none=True) for tool in body.tools]
    if body.response_format is not None and body.response_format.type != "text":
        fields["response_format"] = _response_format(body, config)
    if config.provider == "local" and fields.get("tool_choice") == "required":
        fields["tool_choice"] = _one_tool(body)
    return fields


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=True, exclude_none=True) if dump is not None else value


def _one_tool(body: ChatCompletionRequest) -> dict[str, Any]:
    """``tool_choice: "required"`` on the local model, which can only be made to call a named tool.

    Raises:
        APIError: 400 unless exactly one tool is offered.
    """
    if not body.tools or len(body.tools) != 1:
        raise _refuse("tool_choice", '"required" works on the local model with exactly one tool (it becomes that tool)')
    return {"type": "function", "function": {"name": body.tools[0].function.name}}


def _response_format(body: ChatCompletionRequest, config: LLMConfig) -> dict[str, Any]:
    """``response_format`` for the provider: llama-cpp-python's server takes a JSON schema as
    ``{"type": "json_object", "schema": ...}`` (its grammar then constrains every token).

    Raises:
        APIError: 400 for ``json_schema`` without a schema.
    """
    assert body.response_format is not None
    plain: dict[str, Any] = _plain(body.response_format)
    if body.response_format.type != "json_schema":
        return plain
    if body.response_format.json_schema is None or body.response_format.json_schema.schema_ is None:
        raise _refuse("response_format", "json_schema needs a `json_schema.schema`")
    if config.provider == "local":
        return {"type": "json_object", "schema": body.response_format.json_schema.schema_}
    return plain


def prepare(state: ServerState, body: ChatCompletionRequest) -> Prepared:
    """Check ``body`` against the model it names and make what answering it needs.

    Raises:
        APIError: 404 for an unknown model; 400 naming the field or message that cannot be honoured.
    """
    if body.model.startswith(ASSISTANT_PREFIX):
        return _prepare_assistant(state, body)
    is_kb = body.model.startswith(KB_PREFIX)
    if not (is_kb and body.model[len(KB_PREFIX) :] in state.knowledge_bases.names()) and (
        is_kb or body.model not in state.provider_models()
    ):
        raise APIError(
            404,
            f"The model {body.model!r} does not exist here; GET /v1/models lists the ones that do.",
            "model_not_found",
        )
    check_messages(body.messages, images=not is_kb)
    choices = body.n or 1
    if choices > MAX_CHOICES:
        raise _refuse("n", f"at most {MAX_CHOICES} choices are answered per request")
    config = state.config(None if is_kb else body.model)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    config = replace(
        config,
        system_prompt=None,
        temperature=config.temperature if body.temperature is None else body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens or config.max_tokens,
        stop=stop,
    )
    texts = [m.text() for m in body.messages]
    if is_kb:
        return _prepare_kb(body, config, choices, texts)
    fields = _provider_fields(body, config)
    if fields.get("tools"):
        config = state.tool_config(config)
    messages = chat_messages(body.messages, sees_images(config))
    return Prepared(config, messages, fields, None, choices, texts, _web_share(body))


def _web_share(body: ChatCompletionRequest) -> float | None:
    """The share of the prompt web passages may take, or None without ``web_search_options``.

    Raises:
        APIError: 400 when the last message is not the user's, or more than one choice is asked.
    """
    options = body.web_search_options
    if options is None:
        return None
    if body.messages[-1].role != "user":
        raise _refuse("web_search_options", "the web is searched for a final user message")
    if (body.n or 1) > 1:
        raise _refuse("n", "with web_search_options one choice is answered per request")
    return CONTEXT_SHARES[options.search_context_size]


def _prepare_kb(body: ChatCompletionRequest, config: LLMConfig, choices: int, texts: list[str]) -> Prepared:
    """A ``kb:<name>`` request: the knowledge base answers with Parley's own retrieval.

    Raises:
        APIError: 400 for client tools, or a field the knowledge-base answer cannot honour.
    """
    if body.tools or body.tool_choice:
        raise _refuse("tools", "kb: models answer from the knowledge base with Parley's own tools; send no tools")
    if body.web_search_options is not None:
        raise _refuse("web_search_options", "kb: models answer from the knowledge base, not the web")
    for name in _set_fields(body):
        if name in PASSED_FIELDS:
            raise _refuse(name, "kb: models do not take this field")
    json_mode = body.response_format is not None and body.response_format.type == "json_object"
    if body.response_format is not None and body.response_format.type == "json_schema":
        raise _refuse("response_format", "kb: models take json_object, not json_schema")
    if body.messages[-1].role != "user":
        raise _refuse("messages", "a kb: model answers a final user message")
    messages = [Message(MessageRole(m.role), m.text()) for m in body.messages if m.role in ("user", "assistant")]
    system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer") and m.text())
    config = replace(config, json_mode=json_mode, system_prompt=system or None)
    return Prepared(config, [m.to_chat_message() for m in messages], {}, body.model[len(KB_PREFIX) :], choices, texts)


def _prepare_assistant(state: ServerState, body: ChatCompletionRequest) -> Prepared:
    """An ``assistant:<id>`` request: Parley's agent answers with the assistant's settings.

    Raises:
        APIError: 404 for an unknown assistant; 400 for client tools, a field the agent cannot
            honour, or a last message that is not the user's.
    """
    assistant_id = body.model[len(ASSISTANT_PREFIX) :]
    state.assistant(assistant_id)
    check_messages(body.messages)
    if body.tools or body.tool_choice:
        raise _refuse("tools", "assistant: models run their own tools on Parley's side; send no tools")
    for name in _set_fields(body):
        if name in PASSED_FIELDS or name in ("n", "web_search_options", "logprobs"):
            raise _refuse(name, "assistant: models do not take this field")
    if body.response_format is not None and body.response_format.type == "json_schema":
        raise _refuse("response_format", "assistant: models take json_object, not json_schema")
    if body.messages[-1].role != "user":
        raise _refuse("messages", "an assistant: model answers a final user message")
    texts = [m.text() for m in body.messages]
    messages = [Message(MessageRole(m.role), m.text()) for m in body.messages if m.role in ("user", "assistant")]
    system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer") and m.text())
    fields = {
        "system": system,
        "temperature": body.temperature,
        "max_tokens": body.max_completion_tokens or body.max_tokens,
        "json_mode": body.response_format is not None and body.response_format.type == "json_object",
    }
    config = state.config()
    chat = [m.to_chat_message() for m in messages]
    return Prepared(config, chat, fields, None, 1, texts, assistant=assistant_id)


def _assistant_turn(state: ServerState, prepared: Prepared) -> Turn:
    """The Turn of an ``assistant:<id>`` request: the assistant's agent, its instructions first and
    then the client's system text, the client's messages as the conversation."""
    engine, tools = state.agent(prepared.assistant)
    fields = prepared.fields
    config = engine.config
    instructions = "\n\n".join(p for p in (config.system_prompt, fields["system"]) if p)
    config = replace(
        config,
        system_prompt=instructions or None,
        temperature=config.temperature if fields["temperature"] is None else fields["temperature"],
        max_tokens=fields["max_tokens"] or config.max_tokens,
        json_mode=config.json_mode or fields["json_mode"],
    )
    *history, last = [Message(MessageRole(m.role), m.content or "") for m in prepared.messages]
    chat = Chat(engine.with_config(config), conversation=Conversation(messages=history))
    chat.set_tools(tools)
    chat.set_assistant(prepared.assistant)
    return chat.send(last.content)


def answer_items(state: ServerState, prepared: Prepared) -> Iterator[Item]:
    """The pieces of every choice's answer, in order: ``(choice index, ChunkEvent)`` and, for a
    knowledge base, the ``SourcesEvent``. Blocking: meant for ``api.streaming.stream_in_thread``.

    Raises:
        APIError: 404 when the knowledge base is gone.
        ChatError: the provider failed (before the first piece: the route answers with its status).
    """
    for index in range(prepared.choices):
        events: list[TurnEvent] = []
        turn = _turn(state, prepared).listen(events.append)
        for delta in turn:
            if prepared.own_answer and delta:
                events.append(ChunkEvent({"content": delta}))
            yield from ((index, event) for event in events)
            events.clear()
        if prepared.own_answer:
            events.append(ChunkEvent({}, "stop"))
        yield from ((index, event) for event in events)


def _turn(state: ServerState, prepared: Prepared) -> Turn:
    """The Turn answering one choice."""
    if prepared.assistant is not None:
        return _assistant_turn(state, prepared)
    if prepared.knowledge_base is None:
        web = state.web_search().with_share(prepared.web_share) if prepared.web_share is not None else None
        engine = CompletionEngine.from_defaults(prepared.config, prepared.messages, prepared.fields, web)
        message = replace(Message.user(prepared.texts[-1]), web_search=web is not None)
        return Turn(engine, [], message, on_reply=lambda reply: None)
    try:
        kb = state.knowledge_bases.open(prepared.knowledge_base)
    except KnowledgeBaseError as exc:
        raise APIError(404, str(exc), "model_not_found") from exc
    *history, last = [Message(MessageRole(m.role), m.content or "") for m in prepared.messages]
    conversation = Conversation(messages=history)
    return Chat(KnowledgeEngine.from_defaults(prepared.config, kb), conversation=conversation).send(last.content)


@dataclass
class Assembly:
    """Every choice's pieces put together, as OpenAI's non-streamed answer has them."""

    contents: dict[int, str] = field(default_factory=dict)
    calls: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    finish: dict[int, str] = field(default_factory=dict)
    logprobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)

    def add(self, index: int, event: TurnEvent) -> None:
        """Take in one piece of choice ``index``."""
        if not isinstance(event, ChunkEvent):
            self.sources += [s.to_dict() for s in getattr(event, "sources", ())]
            return
        self.contents[index] = self.contents.get(index, "") + event.delta.get("content", "")
        for call in event.delta.get("tool_calls", []):
            _merge_call(self.calls.setdefault(index, {}), call)
        if event.finish_reason:
            self.finish[index] = event.finish_reason
        if event.logprobs:
            kept = self.logprobs.setdefault(index, {})
            for key, items in event.logprobs.items():
                kept[key] = [*(kept.get(key) or []), *(items or [])]
        if event.usage:
            self.usage = {
                k: (self.usage or {}).get(k, 0) + int(v) for k, v in event.usage.items() if isinstance(v, int)
            }

    def tool_calls(self, index: int) -> list[dict[str, Any]]:
        """The finished tool calls of choice ``index``, in OpenAI's form."""
        return [self.calls[index][i] for i in sorted(self.calls.get(index, {}))]

    def counted_usage(self, prepared: Prepared) -> dict[str, int]:
        """The provider's usage, or else one counted with the model's tokenizer."""
        if self.usage and "prompt_tokens" in self.usage:
            return self.usage
        answer = [*self.contents.values(), *(json.dumps(c) for i in self.calls for c in self.tool_calls(i))]
        prompt = count_tokens(prepared.config, prepared.texts) * prepared.choices
        completion = count_tokens(prepared.config, answer)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def url_citations(content: str, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's ``url_citation`` annotations of ``content``: one per ``[n]`` naming a page used
    (its span in ``content``, ``end_index`` one past the ``]``); when the reply cites none, one per
    page used spanning the whole reply, so a client always learns where the answer came from."""
    pages = [s for s in (Source.from_dict(d) for d in sources) if s is not None and s.url]
    cited = citations(content, pages)
    spans = cited or [(0, len(content), page) for page in pages if not page.skipped]
    return [
        {"type": "url_citation", "url_citation": {"start_index": a, "end_index": b, "url": s.url, "title": s.file_name}}
        for a, b, s in spans
    ]


def _merge_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Add a streamed tool-call delta to the calls being built (by ``index``)."""
    index = int(delta.get("index", 0))
    call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    call["id"] = delta.get("id") or call["id"]
    function = delta.get("function") or {}
    call["function"]["name"] = function.get("name") or call["function"]["name"]
    call["function"]["arguments"] += function.get("arguments") or ""
