"""A conversation as data: its name and messages, and what can be read off them.

Nothing here calls a model or a store: ``controller.chat`` changes a Conversation and saves it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.message import Message

#: Words and characters an automatic title takes from the first message.
TITLE_WORDS, TITLE_CHARS = 6, 40


@dataclass
class Conversation:
    """One conversation.

    Attributes:
        name: the name it is saved under, or None while it is not saved.
        messages: its messages, oldest first (the chosen version of each; see ``model.versions``).
    """

    name: str | None = None
    messages: list[Message] = field(default_factory=list)

    def pending_user_index(self) -> int | None:
        """The index of the last user message if no complete reply follows it (it waits for an
        answer: after a failure or a stop), else None."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.is_user:
                return index
            if not message.incomplete:
                return None
        return None

    def pending_user_message(self) -> Message | None:
        """The user message waiting for an answer (see ``pending_user_index``), or None."""
        index = self.pending_user_index()
        return None if index is None else self.messages[index]

    def last_user_index(self) -> int | None:
        """The index of the last user message, or None when there is none."""
        return next((i for i in range(len(self.messages) - 1, -1, -1) if self.messages[i].is_user), None)

    def tools(self) -> tuple[str, ...]:
        """The tool ids the last user message was sent with (a conversation's tools)."""
        index = self.last_user_index()
        return () if index is None else self.messages[index].tools

    def assistant(self) -> str | None:
        """The id of the assistant the last user message was sent to (a conversation's assistant), or None."""
        index = self.last_user_index()
        return None if index is None else self.messages[index].assistant_id

    def find_turn(self, turn_id: str) -> int | None:
        """The index of the user message that started queued turn ``turn_id``, or None."""
        return next((i for i, m in enumerate(self.messages) if m.turn_id == turn_id and m.is_user), None)


def complete_history(messages: Sequence[Message]) -> list[Message]:
    """The messages a model is given as history: the complete ones (no reply that was cut off)."""
    return [m for m in messages if not m.incomplete]


def auto_title_of(message: Message) -> str:
    """A conversation title from a message: its first ``TITLE_WORDS`` words, at most ``TITLE_CHARS``
    characters (cut at a word, with "…"); the first file's name when the text is empty; else "New chat"."""
    words = re.sub(r"\s+", " ", message.content).strip().split(" ")
    title = " ".join(words[:TITLE_WORDS]).strip()
    if len(words) > TITLE_WORDS or len(title) > TITLE_CHARS:
        cut = title[:TITLE_CHARS].rsplit(" ", 1)[0] if len(title) > TITLE_CHARS else title
        title = (cut or title[:TITLE_CHARS]).rstrip(" ,.;:") + "…"
    if not title.strip("…"):
        title = message.attachments[0].name if message.attachments else "New chat"
    return title
