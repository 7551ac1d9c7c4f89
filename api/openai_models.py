"""The bodies of Parley's OpenAI-compatible ``/v1``, as pydantic models: what a client may send
(``ChatCompletionRequest``; a field Parley does not know is refused with a 400 that names it, never
ignored) and what it gets back (``ChatCompletion``, ``ChatCompletionChunk``, ``ModelList``), in the
shapes of OpenAI's API reference (its OpenAPI description, ``CreateChatCompletionResponse`` and
friends)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    """A request body part in which an unknown field is an error (a 400 naming it), not ignored."""

    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    """An image part of a message's content (``image_url``: ``{"url": "data:image/png;base64,...",
    "detail"?}``); sent as an image to a model that sees images, else as the text OCR reads in it
    (``api.completions.chat_messages``)."""

    type: Literal["image_url"]
    image_url: dict[str, Any]


class FunctionCall(_Strict):
    """The function of a tool call: its name and its arguments as JSON text."""

    name: str
    arguments: str


class ToolCallIn(_Strict):
    """A tool call made by the assistant in an earlier turn."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessageIn(BaseModel):
    """One message of a chat-completion request: system, developer, user, assistant (with text or
    tool calls) or tool (a tool call's result). Keys Parley does not know inside a message are
    ignored, as OpenAI ignores them (clients add their own: litellm sends ``provider_specific_fields``);
    unknown request fields are refused."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def has_images(self) -> bool:
        """True when an image part is in the content."""
        return isinstance(self.content, list) and any(isinstance(part, ImagePart) for part in self.content)


class FunctionDefinition(_Strict):
    """A tool's function: name, description and JSON-schema parameters."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Strict):
    """A tool the model may call (the client runs it)."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(_Strict):
    """``tool_choice`` naming one function."""

    type: Literal["function"]
    function: dict[str, str]


class JsonSchemaFormat(_Strict):
    """``response_format.json_schema``: the schema the reply must follow."""

    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """OpenAI's ``response_format``: ``text``, ``json_object`` or ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Strict):
    """``stream_options``: ``include_usage`` adds a last chunk with the usage and no choices."""

    include_usage: bool = False


class ApproximateLocation(_Strict):
    """``web_search_options.user_location``: where the user roughly is (accepted; the search
    providers here are not told)."""

    type: Literal["approximate"]
    approximate: dict[str, Any]


class WebSearchOptions(_Strict):
    """OpenAI's ``web_search_options``: search the web before answering; ``search_context_size``
    sets the share of the model's context the web passages may take (``controller.web_search``)."""

    user_location: ApproximateLocation | None = None
    search_context_size: Literal["low", "medium", "high"] = "medium"


class ChatCompletionRequest(_Strict):
    """Body of ``POST /v1/chat/completions``: every field Parley honours; any other is a 400."""

    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    web_search_options: WebSearchOptions | None = None


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


class Usage(BaseModel):
    """OpenAI's ``CompletionUsage``: tokens of the prompt, of the reply, and both."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessageOut(BaseModel):
    """The message of a choice (``ChatCompletionResponseMessage``)."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    annotations: list[dict[str, Any]] | None = None


class Choice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessageOut
    finish_reason: str
    logprobs: dict[str, Any] | None


class ChatCompletion(BaseModel):
    """OpenAI's ``CreateChatCompletionResponse`` (streamed: ``ChatCompletionChunk`` events instead);
    ``parley_sources`` holds a knowledge base's chunks for ``kb:<name>`` models, and the web pages
    (used, then skipped with the reason) for ``web_search_options``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    parley_sources: list[dict[str, Any]] | None = None
