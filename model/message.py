"""A message and its typed parts, and their stored form: the one place where a message becomes the
dict kept in conversations.json (and in the PostgreSQL and Redis stores) and back.

Stored form: ``{"role": "user"|"assistant"|"system", "content": "..."}``, the format the app has
always written, plus these optional keys: ``timestamp`` (ISO 8601, UTC), ``incomplete`` (a reply cut
off), ``model`` (the model that gave a reply), ``knowledge_base`` and ``sources`` (knowledge-base
chats), ``turn_id`` (turns answered through the Redis queue), ``stopped`` (the user stopped the
reply), ``feedback``, ``attachments``, ``versions`` with ``version_index`` (``model.versions``),
``tools`` (on a user message: the tool ids offered with it), ``tool_calls`` (on a reply: the tool
calls made before it), ``json_mode``, ``cut`` (a reply that reached the token limit: "Continue"
extends it) and ``web_search`` (on a user message: the web was searched before answering it; the
reply's ``sources`` then hold the pages, with ``url``, and those skipped, with ``skipped``) and
``assistant`` (on a user message: the id of the assistant it was sent to). Readers
ignore keys they do not know, and parts that are not well formed are dropped, so a file written by
another version still loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock

from model.attachments import AttachmentReader, valid_digest

#: Roles a stored message may have.
STORED_ROLES = (MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM)


class InvalidMessageError(ValueError):
    """A stored dict is not a valid message; ``str(error)`` says what is wrong."""


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds, e.g. ``2026-11-21T19:30:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Source:
    """A passage a reply was given: a knowledge-base chunk or a web page's passages.

    Attributes:
        file_name: the file it comes from, or the web page's title.
        where: the page (``page 3``) or row (``Sheet1, row 4``) in a file, a note on a web page
            ("only its first 2 MB were read"), or "".
        score: its cosine similarity to the question, 0 to 1.
        text: the passage (a web page's passages joined by blank lines).
        url: the web page's URL ("" for a file).
        skipped: why a web page was not used (refused by the SSRF guard, failed, not text), or "".
    """

    file_name: str
    where: str = ""
    score: float = 0.0
    text: str = ""
    url: str = ""
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The stored form ``{"file_name", "where", "score", "text"}``, plus ``url`` and ``skipped``
        when set."""
        data: dict[str, Any] = {
            "file_name": self.file_name,
            "where": self.where,
            "score": self.score,
            "text": self.text,
        }
        data.update((k, v) for k, v in (("url", self.url), ("skipped", self.skipped)) if v)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Source | None:
        """The Source of a stored dict, or None when it has no ``file_name``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("file_name"), str):
            return None
        score = data.get("score")
        return cls(
            file_name=data["file_name"],
            where=_text(data.get("where")),
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else 0.0,
            text=_text(data.get("text")),
            url=_text(data.get("url")),
            skipped=_text(data.get("skipped")),
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool by the agent, before its reply.

    Attributes:
        id: the call's id (OpenAI's ``tool_call_id``).
        name: the function name the model called, e.g. ``calculator``.
        arguments: the JSON text the model wrote.
        result: the text given back to the model; None while the call runs.
        error: True when the call failed (unknown tool, bad arguments, or the tool raised).
        round: the 0-based round of calls in the turn.
        sources: for a knowledge base, the chunks its answer came from.
        images: the images the call made (Run Python's charts, a created image), kept by SHA-256.
    """

    id: str
    name: str
    arguments: str
    result: str | None = None
    error: bool = False
    round: int = 0
    sources: tuple[Source, ...] = ()
    images: tuple[Attachment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The stored form ``{"id", "name", "arguments", "result", "error", "round", "sources"?, "images"?}``."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "error": self.error,
            "round": self.round,
        }
        if self.sources:
            data["sources"] = [s.to_dict() for s in self.sources]
        if self.images:
            data["images"] = [a.to_dict() for a in self.images]
        return data

    @classmethod
    def from_dict(cls, data: object) -> ToolCall | None:
        """The ToolCall of a stored dict, or None unless id, name, arguments and result are text."""
        if not isinstance(data, Mapping) or not all(
            isinstance(data.get(k), str) for k in ("id", "name", "arguments", "result")
        ):
            return None
        round_ = data.get("round")
        return cls(
            id=data["id"],
            name=data["name"],
            arguments=data["arguments"],
            result=data["result"],
            error=data.get("error") is True,
            round=round_ if isinstance(round_, int) and not isinstance(round_, bool) else 0,
            sources=_parts(data.get("sources"), Source.from_dict),
            images=tuple(a for a in _parts(data.get("images"), Attachment.from_dict) if a.is_image),
        )


@dataclass(frozen=True, slots=True)
class Feedback:
    """The user's rating of a reply.

    Attributes:
        rating: 1 (thumbs up) or -1 (thumbs down).
        comment: the user's comment, or "".
        timestamp: when it was rated (ISO 8601 UTC), or None.
    """

    rating: int
    comment: str = ""
    timestamp: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form ``{"rating", "comment", "timestamp"}``."""
        return {"rating": self.rating, "comment": self.comment, "timestamp": self.timestamp}

    @classmethod
    def from_dict(cls, data: object) -> Feedback | None:
        """The Feedback of a stored dict, or None unless its rating is 1 or -1."""
        if not isinstance(data, Mapping) or data.get("rating") not in (1, -1) or isinstance(data.get("rating"), bool):
            return None
        stamp = data.get("timestamp")
        return cls(int(data["rating"]), _text(data.get("comment")), stamp if isinstance(stamp, str) else None)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file given with a user message: a document's text, an image or a recording.

    Attributes:
        name: the file's name.
        text: the part of its text that was sent to the model (an image's: what OCR read, for a model
            that cannot see images; a recording's: "", its transcript is the message).
        used_chars: the length of ``text``, in characters.
        total_chars: the length of the file's whole text, in characters.
        sha256: for an image or a recording, the id of its bytes in the store's attachments
            (``model.attachments``), else "".
        mime: for an image or a recording, its type (``image/png``, ``audio/wav``…), else "".
        ocr: for an image, True when its text was read for a model that cannot see images.
    """

    name: str
    text: str
    used_chars: int = 0
    total_chars: int = 0
    sha256: str = ""
    mime: str = ""
    ocr: bool = False

    @property
    def is_image(self) -> bool:
        """True for an image kept by SHA-256."""
        return bool(self.sha256) and self.mime.startswith("image/")

    @property
    def is_audio(self) -> bool:
        """True for a recording kept by SHA-256 (the message was spoken)."""
        return bool(self.sha256) and self.mime.startswith("audio/")

    def to_dict(self) -> dict[str, Any]:
        """The stored form ``{"name", "text", "used_chars", "total_chars"}``, plus ``sha256``, ``mime``
        and ``ocr`` for an image or a recording."""
        data: dict[str, Any] = {
            "name": self.name,
            "text": self.text,
            "used_chars": self.used_chars,
            "total_chars": self.total_chars,
        }
        if self.sha256:
            data.update(sha256=self.sha256, mime=self.mime)
        if self.ocr:
            data["ocr"] = True
        return data

    @classmethod
    def from_dict(cls, data: object) -> Attachment | None:
        """The Attachment of a stored dict, or None unless name and text are text."""
        if (
            not isinstance(data, Mapping)
            or not isinstance(data.get("name"), str)
            or not isinstance(data.get("text"), str)
        ):
            return None
        digest = _text(data.get("sha256"))
        return cls(
            data["name"],
            data["text"],
            _count(data.get("used_chars")),
            _count(data.get("total_chars")),
            sha256=digest if valid_digest(digest) else "",
            mime=_text(data.get("mime")),
            ocr=data.get("ocr") is True,
        )

    def model_text(self) -> str:
        """What the model reads of it in the message's text: ``[Attached file: <name>]`` and the
        text; an image's OCR text as ``[Image <name>, read as text]``; "" for a recording and for an
        image the model sees."""
        if self.is_audio or (self.is_image and not self.ocr):
            return ""
        if self.is_image:
            return f"[Image {self.name}, read as text]\n{self.text or '(no text found in the image)'}"
        return f"[Attached file: {self.name}]\n{self.text}"


@dataclass(slots=True, frozen=True)
class Message:
    """One chat message (immutable: lists of messages share them).

    Attributes:
        role: who wrote it (user, assistant or system).
        content: the text, as Markdown.
        timestamp: ISO 8601 UTC time it was written, or None for messages from older files.
        incomplete: True for a reply that was cut off before it ended.
        model: for a reply, the model that gave it (e.g. ``smollm2-135m-instruct``).
        knowledge_base: the knowledge base a knowledge-base chat used, or None.
        sources: for a knowledge-base reply, the chunks it was given.
        turn_id: the queued turn (REDIS_URL) a user message started or a reply answered, or None.
        stopped: True when the user stopped this reply (it is then also ``incomplete``).
        feedback: the user's rating of a reply, or None.
        attachments: files given with a user message.
        versions: the other versions of this message, each a branch: that version of the message
            followed by what came after it then (``model.versions``).
        version_index: the 0-based place of this version among all ``len(versions) + 1``.
        tools: on a user message, the tool ids offered with it (e.g. ``calculator``, ``kb:notes``).
        tool_calls: on a reply, the tool calls made for it, in order.
        json_mode: on a reply, True when it was asked for as a JSON object.
        cut: on a reply, True when it ended at the token limit (``finish_reason`` "length"), so it
            can be continued.
        web_search: on a user message, True when the web is searched before it is answered.
        assistant_id: on a user message, the id of the assistant it was sent to, or None (Parley);
            stored as ``assistant``.
    """

    role: MessageRole
    content: str
    timestamp: str | None = None
    incomplete: bool = False
    model: str | None = None
    knowledge_base: str | None = None
    sources: tuple[Source, ...] = ()
    turn_id: str | None = None
    stopped: bool = False
    feedback: Feedback | None = None
    attachments: tuple[Attachment, ...] = ()
    versions: tuple[tuple[Message, ...], ...] = field(default=(), compare=True)
    version_index: int = 0
    tools: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    json_mode: bool = False
    cut: bool = False
    web_search: bool = False
    assistant_id: str | None = None

    @property
    def is_user(self) -> bool:
        """True for the user's messages."""
        return self.role is MessageRole.USER

    @property
    def is_reply(self) -> bool:
        """True for the assistant's messages."""
        return self.role is MessageRole.ASSISTANT

    def to_dict(self) -> dict[str, Any]:
        """The stored form: ``{"role", "content"}`` plus the optional keys that are set."""
        data: dict[str, Any] = {"role": self.role.value, "content": self.content}
        optional: list[tuple[str, Any, bool]] = [
            ("timestamp", self.timestamp, self.timestamp is not None),
            ("incomplete", True, self.incomplete),
            ("model", self.model, self.model is not None),
            ("knowledge_base", self.knowledge_base, self.knowledge_base is not None),
            ("sources", [s.to_dict() for s in self.sources], bool(self.sources)),
            ("turn_id", self.turn_id, self.turn_id is not None),
            ("stopped", True, self.stopped),
            ("feedback", self.feedback.to_dict() if self.feedback else None, self.feedback is not None),
            ("attachments", [a.to_dict() for a in self.attachments], bool(self.attachments)),
            ("versions", [[m.to_dict() for m in branch] for branch in self.versions], bool(self.versions)),
            ("version_index", self.version_index, bool(self.versions)),
            ("tools", list(self.tools), bool(self.tools)),
            ("tool_calls", [c.to_dict() for c in self.tool_calls], bool(self.tool_calls)),
            ("json_mode", True, self.json_mode),
            ("cut", True, self.cut),
            ("web_search", True, self.web_search),
            ("assistant", self.assistant_id, self.assistant_id is not None),
        ]
        data.update((key, value) for key, value, present in optional if present)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Message:
        """The Message of a stored dict; unknown keys and malformed parts are left out.

        Raises:
            InvalidMessageError: ``data`` is not a mapping, its role is not user, assistant or
                system, or its content is not text.
        """
        if not isinstance(data, Mapping):
            raise InvalidMessageError(f"a message must be an object, not {type(data).__name__}")
        try:
            role = MessageRole(data.get("role"))
        except ValueError as exc:
            raise InvalidMessageError(f"unknown role {data.get('role')!r}") from exc
        if role not in STORED_ROLES:
            raise InvalidMessageError(f"role {role.value!r} cannot be stored")
        content = data.get("content")
        if not isinstance(content, str):
            raise InvalidMessageError("a message's content must be text")
        versions = tuple(branch for branch in (_branch(b) for b in _list(data.get("versions"))) if branch)
        return cls(
            role=role,
            content=content,
            timestamp=_optional_text(data.get("timestamp")),
            incomplete=data.get("incomplete") is True,
            model=_optional_text(data.get("model")),
            knowledge_base=_optional_text(data.get("knowledge_base")),
            sources=_parts(data.get("sources"), Source.from_dict),
            turn_id=_optional_text(data.get("turn_id")),
            stopped=data.get("stopped") is True,
            feedback=Feedback.from_dict(data.get("feedback")),
            attachments=_parts(data.get("attachments"), Attachment.from_dict),
            versions=versions,
            version_index=_version_index(data.get("version_index"), len(versions)),
            tools=tuple(t for t in _list(data.get("tools")) if isinstance(t, str)),
            tool_calls=_parts(data.get("tool_calls"), ToolCall.from_dict),
            json_mode=data.get("json_mode") is True,
            cut=data.get("cut") is True,
            web_search=data.get("web_search") is True,
            assistant_id=_optional_text(data.get("assistant")),
        )

    def model_text(self) -> str:
        """The text the model is sent for this message: ``content``, then each attachment's
        ``Attachment.model_text`` (a file's text, an image's OCR text) that is not empty."""
        parts = [self.content]
        parts += [text for text in (a.model_text() for a in self.attachments) if text]
        return "\n\n".join(parts)

    def to_chat_message(self, images: AttachmentReader | None = None) -> ChatMessage:
        """The llama-index ChatMessage with this role and ``model_text()``; with ``images`` (a model
        that sees images), each image it has (not read as text) follows the text as an image block,
        which llama-index sends as OpenAI's ``image_url`` part (a base64 data URL)."""
        shown = [a for a in self.attachments if a.is_image and not a.ocr] if images is not None else []
        if not shown or images is None:
            return ChatMessage(role=self.role, content=self.model_text())
        blocks: list[TextBlock | ImageBlock] = [TextBlock(text=self.model_text())]
        for attachment in shown:
            blob = images.attachment(attachment.sha256)
            if blob is None:
                blocks.append(TextBlock(text=f"[Image {attachment.name} is no longer stored.]"))
            else:
                blocks.append(ImageBlock(image=blob.data, image_mimetype=blob.mime))
        return ChatMessage(role=self.role, blocks=blocks)

    def to_chat_messages(self, images: AttachmentReader | None = None) -> list[ChatMessage]:
        """The llama-index messages for this one, in the order a tool-calling model needs them: for a
        reply with ``tool_calls``, per round an assistant message carrying that round's calls
        (OpenAI's ``tool_calls``) and one ``tool`` message per call with its result, then the reply;
        otherwise ``[to_chat_message(images)]``."""
        chat: list[ChatMessage] = []
        for round_ in sorted({call.round for call in self.tool_calls}):
            calls = [c for c in self.tool_calls if c.round == round_]
            requests = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
            chat.append(ChatMessage(role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": requests}))
            chat.extend(
                ChatMessage(
                    role=MessageRole.TOOL,
                    content=str(c.result),
                    additional_kwargs={"tool_call_id": c.id, "name": c.name},
                )
                for c in calls
            )
        chat.append(self.to_chat_message(images))
        return chat

    @classmethod
    def from_chat_message(cls, message: ChatMessage, timestamp: str | None = None) -> Message:
        """The Message of a llama-index ChatMessage; a None content becomes "".

        Raises:
            InvalidMessageError: the role is not user, assistant or system (e.g. a tool message).
        """
        if message.role not in STORED_ROLES:
            raise InvalidMessageError(f"role {message.role.value!r} cannot be stored")
        return cls(role=message.role, content=message.content or "", timestamp=timestamp)

    def bare(self) -> Message:
        """This message without its other versions (they live on the chosen version only)."""
        return replace(self, versions=(), version_index=0)

    @classmethod
    def user(cls, content: str) -> Message:
        """A user message with the current UTC timestamp."""
        return cls(MessageRole.USER, content, utc_now_iso())

    @classmethod
    def assistant(cls, content: str, incomplete: bool = False, model: str | None = None) -> Message:
        """A reply from ``model`` with the current UTC timestamp."""
        return cls(MessageRole.ASSISTANT, content, utc_now_iso(), incomplete, model)


def _list(value: object) -> list[Any]:
    """``value`` if it is a list, else []."""
    return value if isinstance(value, list) else []


def _parts(items: object, parse: Any) -> tuple[Any, ...]:
    """The well-formed parts of a stored list, each parsed with ``parse`` (which gives None for a bad one)."""
    return tuple(part for part in (parse(item) for item in _list(items)) if part is not None)


def _branch(items: object) -> tuple[Message, ...]:
    """A stored branch of versions as Messages; a branch with a bad message is dropped whole."""
    try:
        return tuple(Message.from_dict(item) for item in _list(items))
    except InvalidMessageError:
        return ()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _version_index(index: object, others: int) -> int:
    """A stored ``version_index`` clamped to ``0..others`` (0 when missing or not an integer)."""
    if not isinstance(index, int) or isinstance(index, bool):
        return 0
    return max(0, min(index, others))
