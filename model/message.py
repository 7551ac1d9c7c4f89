"""The Message dataclass and its conversions.

A message is stored in conversations.json as ``{"role": ..., "content": ...}``, the seed
(bnaGPT) format. Optional extra keys that Parley writes: ``timestamp`` (ISO 8601, UTC) and
``incomplete`` (true when a reply was cut off), ``model`` (the model that gave a reply),
``knowledge_base`` and ``sources`` (knowledge-base chats), ``turn_id`` (turns answered through the
Redis queue), ``stopped`` (the user stopped the reply), ``feedback`` (``{"rating": 1|-1, "comment",
"timestamp"}`` on a rated reply), ``attachments`` (files dropped into the chat box: ``{"name", "text",
"used_chars", "total_chars"}``), ``versions`` with ``version_index`` (the other versions of a
regenerated reply or an edited message, see ``model.versions``), ``tools`` (on a user message: the
ids of the tools the agent was offered, ``controller.tools``), ``tool_calls`` (on a reply: the
agent's tool calls before it, ``controller.agent.ToolCallWorker``) and ``json_mode`` (a reply
asked for as a JSON object). Unknown keys are ignored on read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole

#: Roles a stored message may have (conversations.json format, see DESIGN.md).
STORED_ROLES = (MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM)


class InvalidMessageError(ValueError):
    """Raised when a dict from conversations.json is not a valid message."""


def utc_now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string with seconds, e.g. ``2026-11-21T19:30:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True, frozen=True)
class Message:
    """One chat message (immutable: the store shares Message objects between lists).

    Attributes:
        role: who wrote it, a llama-index ``MessageRole`` (user, assistant or system).
        content: the text, as markdown.
        timestamp: ISO 8601 UTC time it was written, or None for messages from older files.
        incomplete: True when this is an assistant reply that was cut off before it ended.
        model: for an assistant reply, the model that gave it (e.g. ``smollm2-135m-instruct``).
        knowledge_base: the knowledge base a knowledge-base chat used, or None.
        sources: for a knowledge-base reply, the retrieved chunks it was given, each a dict with
            ``file_name``, ``where`` (page or row, may be ""), ``score`` (cosine similarity) and ``text``.
        turn_id: the queued turn (REDIS_URL) a user message started or a reply answered, or None.
        stopped: True when the user stopped this reply (it is then also ``incomplete``).
        feedback: the user's rating of a reply, ``{"rating": 1 or -1, "comment": str, "timestamp": str}``, or None.
        attachments: files given with a user message, each ``{"name", "text", "used_chars", "total_chars"}``
            (``text`` is the part of the file's text that was sent, ``used_chars`` its length in characters).
        versions: the other versions of this message, each a branch: a list of message dicts whose first
            is the other version of this message and the rest what followed it (``model.versions``).
        version_index: the 0-based place of this version among all ``len(versions) + 1``.
        tools: on a user message, the tool ids offered with it (e.g. ``calculator``, ``kb:notes``).
        tool_calls: on a reply, the tool calls made for it, in order, each ``{"id", "name",
            "arguments" (JSON text), "result" (text), "error" (bool), "round" (int), "sources"?}``.
        json_mode: on a reply, True when it was asked for as a JSON object.
    """

    role: MessageRole
    content: str
    timestamp: str | None = None
    incomplete: bool = False
    model: str | None = None
    knowledge_base: str | None = None
    sources: tuple[dict, ...] = ()
    turn_id: str | None = None
    stopped: bool = False
    feedback: dict | None = None
    attachments: tuple[dict, ...] = ()
    versions: tuple[tuple[dict, ...], ...] = ()
    version_index: int = 0
    tools: tuple[str, ...] = ()
    tool_calls: tuple[dict, ...] = ()
    json_mode: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the conversations.json form: ``{"role", "content"}`` plus set optional keys."""
        data: dict[str, Any] = {"role": self.role.value, "content": self.content}
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        if self.incomplete:
            data["incomplete"] = True
        if self.model is not None:
            data["model"] = self.model
        if self.knowledge_base is not None:
            data["knowledge_base"] = self.knowledge_base
        if self.sources:
            data["sources"] = [dict(s) for s in self.sources]
        if self.turn_id is not None:
            data["turn_id"] = self.turn_id
        if self.stopped:
            data["stopped"] = True
        if self.feedback is not None:
            data["feedback"] = dict(self.feedback)
        if self.attachments:
            data["attachments"] = [dict(a) for a in self.attachments]
        if self.versions:
            data["versions"] = [[dict(m) for m in branch] for branch in self.versions]
            data["version_index"] = self.version_index
        if self.tools:
            data["tools"] = list(self.tools)
        if self.tool_calls:
            data["tool_calls"] = [dict(c) for c in self.tool_calls]
        if self.json_mode:
            data["json_mode"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Build a Message from a conversations.json dict; unknown keys are ignored.

        Raises:
            InvalidMessageError: if ``data`` is not a mapping, the role is not user, assistant
                or system, or the content is not a string.
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
        timestamp = data.get("timestamp")
        model = data.get("model")
        raw_versions = data.get("versions")
        branches = (_dicts(b, ("role", "content")) for b in (raw_versions if isinstance(raw_versions, list) else ()))
        versions = tuple(tuple(branch) for branch in branches if branch)
        return cls(
            role=role,
            content=content,
            timestamp=timestamp if isinstance(timestamp, str) else None,
            incomplete=data.get("incomplete") is True,
            model=model if isinstance(model, str) else None,
            knowledge_base=data.get("knowledge_base") if isinstance(data.get("knowledge_base"), str) else None,
            sources=tuple(s for s in data.get("sources") or () if isinstance(s, dict))
            if isinstance(data.get("sources"), list)
            else (),
            turn_id=data.get("turn_id") if isinstance(data.get("turn_id"), str) else None,
            stopped=data.get("stopped") is True,
            feedback=_feedback(data.get("feedback")),
            attachments=tuple(_dicts(data.get("attachments"), ("name", "text"))),
            versions=versions,
            version_index=_version_index(data.get("version_index"), len(versions)),
            tools=tuple(t for t in data.get("tools") or () if isinstance(t, str))
            if isinstance(data.get("tools"), list)
            else (),
            tool_calls=tuple(_tool_calls(data.get("tool_calls"))),
            json_mode=data.get("json_mode") is True,
        )

    def to_chat_message(self) -> ChatMessage:
        """Return the llama-index ``ChatMessage`` with the same role and content, plus the text of
        attached files, each after a line ``[Attached file: <name>]``."""
        return ChatMessage(role=self.role, content=self.model_text())

    def to_chat_messages(self) -> list[ChatMessage]:
        """The llama-index messages for this one, in the order a tool-calling model needs them: for a
        reply with ``tool_calls``, per round an assistant message carrying that round's calls
        (OpenAI's ``tool_calls``) and one ``tool`` message per call with its result, then the reply;
        otherwise ``[to_chat_message()]``."""
        if not self.tool_calls:
            return [self.to_chat_message()]
        chat: list[ChatMessage] = []
        for round_ in sorted({call["round"] for call in self.tool_calls}):
            calls = [c for c in self.tool_calls if c["round"] == round_]
            requests = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls
            ]
            chat.append(ChatMessage(role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": requests}))
            chat.extend(
                ChatMessage(
                    role=MessageRole.TOOL,
                    content=str(c["result"]),
                    additional_kwargs={"tool_call_id": c["id"], "name": c["name"]},
                )
                for c in calls
            )
        chat.append(self.to_chat_message())
        return chat

    def model_text(self) -> str:
        """The text the model is sent for this message: ``content`` and the attached files' text."""
        parts = [self.content]
        for attachment in self.attachments:
            parts.append(f"[Attached file: {attachment['name']}]\n{attachment['text']}")
        return "\n\n".join(parts)

    @classmethod
    def from_chat_message(cls, message: ChatMessage, timestamp: str | None = None) -> Message:
        """Build a Message from a llama-index ``ChatMessage``; a None content becomes ``""``.

        Raises:
            InvalidMessageError: if the role is not user, assistant or system (e.g. a tool message).
        """
        if message.role not in STORED_ROLES:
            raise InvalidMessageError(f"role {message.role.value!r} cannot be stored")
        return cls(role=message.role, content=message.content or "", timestamp=timestamp)

    @classmethod
    def user(cls, content: str) -> Message:
        """Return a user message with the current UTC timestamp."""
        return cls(MessageRole.USER, content, utc_now_iso())

    @classmethod
    def assistant(cls, content: str, incomplete: bool = False, model: str | None = None) -> Message:
        """Return an assistant message from ``model`` with the current UTC timestamp."""
        return cls(MessageRole.ASSISTANT, content, utc_now_iso(), incomplete, model)


def _dicts(items: object, required: tuple[str, ...]) -> list[dict]:
    """The dicts in list ``items`` that have every key of ``required`` (others are dropped)."""
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict) and all(k in item for k in required)]


def _tool_calls(items: object) -> list[dict]:
    """The stored tool calls that have an id, name, arguments and result as text and a round."""
    calls = []
    for call in _dicts(items, ("id", "name", "arguments", "result")):
        if all(isinstance(call[k], str) for k in ("id", "name", "arguments", "result")):
            round_ = call.get("round")
            calls.append({**call, "round": round_ if isinstance(round_, int) and not isinstance(round_, bool) else 0})
    return calls


def _feedback(value: object) -> dict | None:
    """A stored ``feedback`` value if it has a rating of 1 or -1, else None."""
    if isinstance(value, dict) and value.get("rating") in (1, -1):
        return dict(value)
    return None


def _version_index(index: object, others: int) -> int:
    """A stored ``version_index`` clamped to ``0..others`` (0 when missing or not an integer)."""
    if not isinstance(index, int) or isinstance(index, bool):
        return 0
    return max(0, min(index, others))
