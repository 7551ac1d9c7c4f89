"""An assistant: a named helper with its own instructions, model, tools and knowledge (like a custom
GPT), and its stored form.

Stored form (the assistants file beside conversations.json, a PostgreSQL row, a Redis hash field):
``{"id", "name", "emoji", "description", "instructions", "provider", "model", "temperature",
"tools", "json_mode", "starters", "created", "updated"}``. The ``id`` is a slug made from the name
at creation (``assistant:<id>`` over ``/v1``) and never changes; the name may, and is unique
ignoring case. ``provider`` and ``model`` are ``"default"`` to use the sidebar's; ``temperature``
is None for the sidebar's. Built-in examples (``BUILT_INS``) live in the code, are never stored
and cannot be changed or deleted: "Duplicate" makes an editable copy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from model.message import utc_now_iso

#: The assistant a chat uses when none is chosen (today's behaviour: the sidebar's settings).
DEFAULT_ASSISTANT = "Parley"
#: "Use the sidebar's" for provider and model.
DEFAULT = "default"
#: Most conversation starters an assistant has.
MAX_STARTERS = 4
#: Longest name and description, in characters.
MAX_NAME_CHARS = 60
MAX_DESCRIPTION_CHARS = 300
#: Longest instructions, in characters (the context budget is checked when it is used).
MAX_INSTRUCTIONS_CHARS = 20_000
#: The tool id meaning "every knowledge base" (the Librarian's).
ALL_KNOWLEDGE_BASES = "kb:*"


class InvalidAssistantError(ValueError):
    """An assistant cannot be made from what was given; ``str(error)`` says what is wrong, for the user."""


def slug_of(name: str) -> str:
    """The id made from ``name``: lower-case ASCII letters, digits and hyphens, at most 40
    characters (e.g. "Python tutor" → ``python-tutor``); ``assistant`` when nothing is left."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:40].strip("-") or "assistant"


def name_key(name: str) -> str:
    """What two names must not share: the name trimmed and case-folded."""
    return name.strip().casefold()


@dataclass(frozen=True)
class Assistant:
    """A named helper (see the module docstring).

    Attributes:
        id: the slug, fixed at creation ("" until created).
        name: shown everywhere; unique, ignoring case.
        emoji: one emoji shown before the name.
        description: one line on what it is for.
        instructions: its system prompt (replaces the sidebar's while it is chosen).
        provider: ``local``, ``groq``, ``openai``, ``openai_like``, or ``default`` (the sidebar's).
        model: a model id, or ``default`` (the provider's, as the sidebar would pick it).
        temperature: 0 to 2, or None for the sidebar's.
        tools: tool ids, as the "Tools" picker has them (``kb:<name>`` for a knowledge base).
        json_mode: replies asked for as one JSON object.
        starters: up to ``MAX_STARTERS`` conversation starters.
        created, updated: ISO 8601 UTC times, or None for a built-in.
        built_in: True for the examples in the code (not stored, not changeable).
    """

    id: str
    name: str
    emoji: str = "🤖"
    description: str = ""
    instructions: str = ""
    provider: str = DEFAULT
    model: str = DEFAULT
    temperature: float | None = None
    tools: tuple[str, ...] = ()
    json_mode: bool = False
    starters: tuple[str, ...] = ()
    created: str | None = None
    updated: str | None = None
    built_in: bool = False

    @property
    def label(self) -> str:
        """The emoji and the name, e.g. "🐍 Python tutor"."""
        return f"{self.emoji} {self.name}".strip()

    def to_dict(self) -> dict[str, Any]:
        """The stored form (``built_in`` is not stored)."""
        return {
            "id": self.id,
            "name": self.name,
            "emoji": self.emoji,
            "description": self.description,
            "instructions": self.instructions,
            "provider": self.provider,
            "model": self.model,
            "temperature": self.temperature,
            "tools": list(self.tools),
            "json_mode": self.json_mode,
            "starters": list(self.starters),
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: object) -> Assistant:
        """The checked Assistant of ``data`` (a stored or imported dict).

        Raises:
            InvalidAssistantError: not a JSON object, or a field is missing or wrong (named).
        """
        if not isinstance(data, Mapping):
            raise InvalidAssistantError("An assistant must be a JSON object.")
        text = {key: _text(data, key) for key in ("id", "name", "emoji", "description", "instructions")}
        temperature = data.get("temperature")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
        ):
            raise InvalidAssistantError("`temperature` must be a number from 0 to 2, or null.")
        assistant = cls(
            id=text["id"],
            name=text["name"],
            emoji=text["emoji"] or "🤖",
            description=text["description"],
            instructions=text["instructions"],
            provider=_text(data, "provider") or DEFAULT,
            model=_text(data, "model") or DEFAULT,
            temperature=None if temperature is None else float(temperature),
            tools=_texts(data, "tools"),
            json_mode=data.get("json_mode") is True,
            starters=_texts(data, "starters"),
            created=data.get("created") if isinstance(data.get("created"), str) else None,
            updated=data.get("updated") if isinstance(data.get("updated"), str) else None,
        )
        return assistant.checked()

    def checked(self) -> Assistant:
        """This assistant with its name trimmed and blank starters dropped, once it is valid.

        Raises:
            InvalidAssistantError: an empty or too long name, description or instructions, more
                than ``MAX_STARTERS`` starters, an unknown provider.
        """
        name = self.name.strip()
        if not name:
            raise InvalidAssistantError("Give the assistant a name.")
        if len(name) > MAX_NAME_CHARS or "\x00" in name:
            raise InvalidAssistantError(f"A name has at most {MAX_NAME_CHARS} characters (and no NUL).")
        if len(self.description) > MAX_DESCRIPTION_CHARS:
            raise InvalidAssistantError(f"A description has at most {MAX_DESCRIPTION_CHARS} characters.")
        if len(self.instructions) > MAX_INSTRUCTIONS_CHARS:
            raise InvalidAssistantError(f"Instructions have at most {MAX_INSTRUCTIONS_CHARS:,} characters.")
        starters = tuple(s.strip() for s in self.starters if s.strip())
        if len(starters) > MAX_STARTERS:
            raise InvalidAssistantError(f"An assistant has at most {MAX_STARTERS} conversation starters.")
        if self.provider not in (DEFAULT, "local", "groq", "openai", "openai_like"):
            raise InvalidAssistantError(f"Unknown provider {self.provider!r}.")
        if len(self.model) > 200 or len(self.tools) > 50 or any(len(s) > 1000 for s in starters):
            raise InvalidAssistantError("A model id has at most 200 characters, tools at most 50, a starter 1,000.")
        emoji = self.emoji.strip()[:8] or "🤖"
        return replace(self, name=name, starters=starters, emoji=emoji, model=self.model.strip() or DEFAULT)

    def stamped(self, created: bool) -> Assistant:
        """This assistant with ``updated`` (and, when ``created``, ``created``) set to now."""
        now = utc_now_iso()
        return replace(self, updated=now, created=now if created else self.created, built_in=False)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidAssistantError(f"`{key}` must be text.")
    return value


def _texts(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidAssistantError(f"`{key}` must be a list of text.")
    return tuple(value)


#: The built-in examples: copy one ("Duplicate") to change it.
BUILT_INS: tuple[Assistant, ...] = (
    Assistant(
        id="writing-helper",
        name="Writing helper",
        emoji="✍️",
        description="Improves your text: clearer, shorter, friendlier.",
        instructions=(
            "You are a writing helper. Rewrite or improve the user's text so it is clear, concise and "
            "friendly. Keep the meaning; say briefly what you changed."
        ),
        starters=("Make this email friendlier:", "Shorten this paragraph:", "Fix the grammar in:"),
        built_in=True,
    ),
    Assistant(
        id="python-tutor",
        name="Python tutor",
        emoji="🐍",
        description="Explains Python and runs small examples.",
        instructions=(
            "You are a patient Python tutor. Explain step by step, show short examples, and run code "
            "with the run_python tool to check it."
        ),
        tools=("python",),
        starters=("What is a list comprehension?", "How do I read a CSV file?"),
        built_in=True,
    ),
    Assistant(
        id="librarian",
        name="Librarian",
        emoji="📚",
        description="Answers from your knowledge bases, citing them.",
        instructions=(
            "You are a librarian. Answer from the user's documents using the knowledge-base tools, and "
            "say which document an answer comes from. If they hold nothing about it, say so."
        ),
        tools=(ALL_KNOWLEDGE_BASES,),
        starters=("What do my documents say about this?",),
        built_in=True,
    ),
)
