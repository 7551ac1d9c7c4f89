"""Import and export formats of conversations, and the conversations.json text itself.

- conversations.json (and an exported or imported file): a JSON object mapping each name to a list
  of stored messages (``model.message``), one conversation per line;
- Markdown: one conversation, a section per message;
- feedback: every rated reply as JSON Lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from model.message import InvalidMessageError, Message
from model.store import Conversations, StoreError


def parse_conversations(raw: object) -> tuple[Conversations, list[str]]:
    """Turn a decoded JSON value into conversations, keeping every part that is valid.

    Args:
        raw: the value ``json.loads`` gave for a whole conversations file.

    Returns:
        ``(conversations, problems)``: the valid conversations, and one sentence per part that
        was dropped. A non-object top level gives ``({}, [problem])``.
    """
    if not isinstance(raw, dict):
        return {}, [f"the file holds a {type(raw).__name__}, not an object of conversations"]
    conversations: Conversations = {}
    problems: list[str] = []
    for name, items in raw.items():
        if not isinstance(items, list):
            problems.append(f"conversation {name!r} is not a list of messages")
            continue
        try:
            conversations[name] = [Message.from_dict(item) for item in items]
        except InvalidMessageError as exc:
            problems.append(f"conversation {name!r}: {exc}")
    return conversations, problems


def dump_messages(messages: list[Message]) -> str:
    """One conversation's messages as JSON text (one line, non-ASCII kept)."""
    return json.dumps([m.to_dict() for m in messages], ensure_ascii=False)


def entry_bytes(name: str, messages: list[Message]) -> bytes:
    """One conversation as the UTF-8 bytes of its line in the file, ``"name": [messages...]``."""
    return f"{json.dumps(name, ensure_ascii=False)}: {dump_messages(messages)}".encode()


def file_pieces(entries: list[bytes]) -> list[bytes]:
    """A whole conversations file as byte strings: ``{``, the entries separated by ``,``, then ``}``."""
    pieces = [b"{\n"]
    for i, entry in enumerate(entries):
        if i:
            pieces.append(b",\n")
        pieces.append(entry)
    pieces.append(b"\n}\n")
    return pieces


def dump_conversations(conversations: Conversations) -> str:
    """Conversations as the conversations.json text: one line per conversation.

    Not indented: Python's C JSON encoder only runs without ``indent``, several times faster.
    """
    entries = [entry_bytes(name, messages) for name, messages in conversations.items()]
    return b"".join(file_pieces(entries)).decode("utf-8")


def parse_import(text: str | bytes) -> Conversations:
    """Parse an uploaded JSON file in the conversations.json format (one or many conversations).

    Raises:
        StoreError: the file is not UTF-8 JSON, not an object of conversations, holds an invalid
            message, or holds none; the sentence says which.
    """
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"That file is not valid JSON ({exc}). Nothing was imported.") from exc
    conversations, problems = parse_conversations(raw)
    if problems:
        raise StoreError(f"That file is not in the conversations format: {problems[0]}. Nothing was imported.")
    if not conversations:
        raise StoreError("That file holds no conversations. Nothing was imported.")
    return conversations


def export_json(name: str, messages: list[Message]) -> str:
    """One conversation as conversations.json text, ``{name: [messages]}``, importable as it is."""
    return dump_conversations({name: messages})


def export_feedback(conversations: Mapping[str, list[Message]]) -> str:
    """The rated replies of ``conversations`` as JSON Lines, one object per rated reply.

    Each line: ``{"conversation", "question", "answer", "model", "rating", "comment", "timestamp"}``,
    where ``question`` is the user message before the reply (with attached files' names),
    ``rating`` is 1 (thumbs up) or -1 (thumbs down) and ``timestamp`` is when it was rated (ISO 8601 UTC).
    The format suits prompt and model tuning tools that read JSONL (one JSON object per line).
    """
    lines = []
    for name, messages in conversations.items():
        question = ""
        for message in messages:
            if message.is_user:
                files = ", ".join(a.name for a in message.attachments)
                question = message.content + (f" [files: {files}]" if files else "")
            elif message.is_reply and message.feedback:
                record = {
                    "conversation": name,
                    "question": question,
                    "answer": message.content,
                    "model": message.model,
                    "rating": message.feedback.rating,
                    "comment": message.feedback.comment,
                    "timestamp": message.feedback.timestamp,
                }
                lines.append(json.dumps(record, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def export_markdown(name: str, messages: list[Message]) -> str:
    """One conversation as Markdown: a title, then a section per message with its role."""
    lines = [f"# {name}", ""]
    for m in messages:
        note = " (incomplete)" if m.incomplete else ""
        when = f" · {m.timestamp}" if m.timestamp else ""
        lines += [f"### {m.role.value.capitalize()}{note}{when}", "", m.content, ""]
    return "\n".join(lines)
