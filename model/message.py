"""The Message dataclass and its conversions.

A message is stored in conversations.json as ``{"role": ..., "content": ...}``, the seed
(bnaGPT) format. Optional extra keys that Parley writes: ``timestamp`` (ISO 8601, UTC) and
``incomplete`` (true when a reply was cut off), ``model`` (the model that gave a reply),
``knowledge_base`` and ``sources`` (knowledge-base chats), ``turn_id`` (turns answered through the
Redis queue). Unknown keys are ignored on read.
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
    """

    role: MessageRole
    content: str
    timestamp: str | None = None
    incomplete: bool = False
    model: str | None = None
    knowledge_base: str | None = None
    sources: tuple[dict, ...] = ()
    turn_id: str | None = None

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
        )

    def to_chat_message(self) -> ChatMessage:
        """Return the llama-index ``ChatMessage`` with the same role and content."""
        return ChatMessage(role=self.role, content=self.content)

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
