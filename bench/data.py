"""Deterministic benchmark data: N conversations × M messages in the conversations.json format.

Fixed seed, so every run writes the same bytes; nothing large is committed (bench/data/ is ignored).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = [
    "the",
    "a",
    "model",
    "message",
    "token",
    "stream",
    "reply",
    "chat",
    "local",
    "server",
    "memory",
    "context",
    "window",
    "budget",
    "save",
    "load",
    "delete",
    "conversation",
    "parley",
    "question",
    "answer",
    "river",
    "mountain",
    "bread",
    "dragon",
    "garden",
    "music",
    "light",
    "code",
]


def make_conversations(count: int, messages_each: int = 50, seed: int = 1234) -> dict[str, list[dict]]:
    """Return ``count`` conversations of ``messages_each`` messages (~100 bytes each), alternating roles."""
    rng = random.Random(seed)
    data: dict[str, list[dict]] = {}
    for c in range(count):
        data[f"Conversation {c:05d}"] = [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": " ".join(rng.choice(WORDS) for _ in range(9)),
                "timestamp": f"2026-{1 + c % 12:02d}-{1 + c % 28:02d}T{i % 24:02d}:00:00Z",
            }
            for i in range(messages_each)
        ]
    return data


def write_file(path: Path, count: int, messages_each: int = 50) -> int:
    """Write the conversations file for ``count`` conversations; return its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(make_conversations(count, messages_each), ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return len(text.encode())
