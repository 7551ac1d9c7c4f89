"""A conversation saved by name, shared by the memory and knowledge-base pages.

One turn (DESIGN.md): the user message is appended and, if the conversation has a name, saved
before the model is called; the reply is streamed; the assistant message is appended and saved
when the stream ends. A cut-off reply is saved marked incomplete. With ``auto_title`` (the pages),
a new conversation is saved from its first message under the first words of that message.
Regenerating, editing, choosing a version and rating a reply rewrite the conversation in the
store (without a backup: they are small, and the replaced versions are kept in the messages).
Subclasses say how a turn is answered (``_turn``): the memory page through an OpenAIAgent,
the knowledge-base page through a chat engine over the knowledge base.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from controller.agent import build_memory, make_llm
from controller.chat_session import ChatError, ChatSession
from controller.context import before_pending, fit_memory, prompt_token_limit
from model.message import Message, utc_now_iso
from model.store_base import Store, StoreError
from utils.llm import LLMConfig


class SavedChat(ChatSession):
    """Messages, memory and the name a conversation is saved under, with its save/load actions.

    Args:
        config: provider, model, limits and system prompt.
        store: where named conversations are saved.

    Attributes:
        name: the saved conversation's name, or None while it is unsaved.
        save_error: the last auto-save failure, for the user, or None.
        llm: the llama-index model, or None while the config cannot be used (no key).
        memory: a ChatMemoryBuffer holding the complete messages.
        token_limit: tokens a request may carry (``controller.context.memory_token_limit``).
        auto_title: True to save a new conversation from its first message under an automatic
            title (``auto_title_of``); False (the API and the worker, whose conversations are named).
    """

    auto_title = False

    def __init__(self, config: LLMConfig, store: Store) -> None:
        super().__init__(config)
        self.store = store
        self.name: str | None = None
        self.save_error: str | None = None
        self._saved = 0  # messages[:_saved] are in the store
        self._rewrite = False  # messages before _saved changed: the next save replaces
        self.turn_id: str | None = None  # the queued turn being answered (marks its reply)
        self.rebuild()

    # ----- model and memory ----------------------------------------------------------------
    def rebuild(self, history: list[Message] | None = None) -> None:
        """Rebuild the LLM and the memory (from ``history``, default all messages).

        A config that cannot be used (no key) leaves ``llm`` None; the next message then fails
        with the sentence that says how to fix it.
        """
        self.llm = make_llm(self.config)
        self.token_limit = prompt_token_limit(self.config, self.llm)
        self.memory = build_memory(self.messages if history is None else history, self.llm, self.token_limit)

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on; the memory is rebuilt with the same messages."""
        self.config = config
        self.rebuild()

    # ----- chatting ------------------------------------------------------------------------
    def stream_reply(
        self, text: str, files: Sequence[tuple[str, bytes]] = (), attachments: Sequence[dict] = ()
    ) -> Iterator[str]:
        """Add and auto-save the user's ``text`` (with ``files``' text, see ``new_user_message``),
        then return the reply's text deltas as they arrive.

        Raises:
            ChatError: the message is too long or a file cannot be read (nothing is added;
                ``refused_text`` holds the text), or, while iterating, the provider failed: the
                user's message stays in ``messages`` and in the saved file, and the memory is
                rebuilt from ``messages``.
        """
        message = self.new_user_message(text, files, attachments)
        sent = message.model_text()
        self.budget = fit_memory(self.memory, sent, self.config.system_prompt, self.token_limit)
        self.messages.append(message)
        self._autosave()
        return self._turn(sent)

    def set_feedback(self, index: int, rating: int | None, comment: str = "") -> None:
        """Rate reply ``index``: ``rating`` 1 (thumbs up), -1 (thumbs down) or None (no rating).

        Stored on the message as ``{"rating", "comment", "timestamp"}`` and saved at once (a save
        failure goes to ``save_error``).

        Raises:
            ValueError: ``index`` is not an assistant message or ``rating`` is not 1, -1 or None.
        """
        message = self.messages[index]
        if message.role.value != "assistant" or rating not in (1, -1, None):
            raise ValueError("only a reply can be rated, with 1 or -1")
        feedback = (
            None if rating is None else {"rating": rating, "comment": comment.strip(), "timestamp": utc_now_iso()}
        )
        self.messages[index] = replace(message, feedback=feedback)
        self._rewrite = True
        self._autosave()

    def _changed(self) -> None:
        """Earlier messages changed (a version chosen or restored): rebuild the memory and save."""
        self._rewrite = True
        self.rebuild()
        self._autosave()

    def _truncated(self) -> None:
        """Messages were cut at an edit: the memory is rebuilt from what is left (nothing is saved yet)."""
        self.rebuild()

    def _resend(self, text: str) -> Iterator[str]:
        """Memory from the messages before the pending ``text``, then the reply to it."""
        self.rebuild(before_pending(self.messages, text))
        self.budget = fit_memory(self.memory, text, self.config.system_prompt, self.token_limit)
        yield from self._turn(text)

    def _turn(self, text: str) -> Iterator[str]:
        """Yield the reply to ``text`` (already in ``messages``), then append and save it."""
        raise NotImplementedError

    def _autosave(self) -> None:
        """Save the messages not saved yet under ``name``; with ``auto_title``, name a new conversation.

        New messages are appended (not replaced), so a turn saved by another tab or instance
        meanwhile is kept; after a change to earlier messages (versions, ratings) the whole
        conversation is replaced. A failure is kept in ``save_error``, not raised; the next save
        writes what is still unsaved.
        """
        if self._merge_branch():
            self._rewrite = True
        if not self.messages:
            return
        try:
            if self.name is None:
                if not self.auto_title:
                    return
                self.name = self.store.save(self._unique_title(), self.messages, backup=False)
            elif self._rewrite or self._saved > len(self.messages):
                self.store.save(self.name, self.messages, backup=False)
            else:
                self.store.append(self.name, self.messages[self._saved :])
            self._saved = len(self.messages)
            self._rewrite = False
            self.save_error = None
        except StoreError as exc:
            self.save_error = str(exc)

    def _unique_title(self) -> str:
        """``auto_title_of`` the first user message, with " (2)", " (3)"… if that name is taken.

        Raises:
            StoreError: the store cannot be read.
        """
        first = next((m for m in self.messages if m.role.value == "user"), self.messages[0])
        title = auto_title_of(first)
        candidate, number = title, 1
        while self.store.exists(candidate):
            number += 1
            candidate = f"{title} ({number})"
        return candidate

    def sync(self) -> bool:
        """Take in messages that another tab or instance saved to this conversation since.

        Does nothing while some messages are not saved yet (they would be lost), or when the
        conversation is unnamed or was deleted.

        Returns:
            True if the messages changed (memory rebuilt).

        Raises:
            StoreError: the store cannot be read.
        """
        if self.name is None or self._saved != len(self.messages):
            return False
        stored = self.store.get(self.name)
        if stored is None or (len(stored) == len(self.messages) and stored[-1:] == self.messages[-1:]):
            return False  # others only ever add messages, so the same count and last message: no change
        self.messages = stored
        self._saved = len(stored)
        self.rebuild()
        return True

    # ----- the saved conversations ---------------------------------------------------------
    def save_as(self, name: str) -> str:
        """Save the conversation under ``name`` (trimmed); later turns auto-save there.

        Returns:
            the trimmed name.

        Raises:
            StoreError: empty name or failed write; the messages stay in the session.
        """
        self.name = self.store.save(name, self.messages)
        self._saved = len(self.messages)
        self._rewrite = False
        self.save_error = None
        return self.name

    def load_turn(self, name: str, turn_id: str) -> str:
        """Load ``name`` up to the user message of queued turn ``turn_id``, which then waits for its reply.

        Later messages are left out of this session (they stay stored); the reply is marked with
        ``turn_id`` and appended after what is stored.

        Returns:
            the text of the user message.

        Raises:
            StoreError: no such conversation, or the store cannot be read.
            ChatError: the conversation holds no user message of that turn.
        """
        self.load(name)
        for index, message in enumerate(self.messages):
            if message.turn_id == turn_id and message.role.value == "user":
                self.messages = self.messages[: index + 1]
                self._saved = len(self.messages)
                self.turn_id = turn_id
                self.rebuild()
                return message.content
        raise ChatError(f"The message of this turn is no longer in {name!r}; it may have been edited or deleted.")

    def load(self, name: str) -> None:
        """Replace the session's conversation with the saved ``name`` and rebuild the memory.

        Raises:
            StoreError: no such conversation, or the file cannot be read.
        """
        messages = self.store.get(name)
        if messages is None:
            raise StoreError(f"There is no saved conversation called {name!r}; it may have been deleted.")
        self.messages = messages
        self.name = name
        self._saved = len(messages)
        self._rewrite = False
        self._branch = None
        self.budget = None
        self.rebuild()

    def delete(self, name: str) -> None:
        """Delete the saved ``name``; if it is the open conversation, it stays open but unnamed.

        Raises:
            StoreError: the write failed; the file is unchanged.
        """
        self.store.delete(name)
        if self.name == name:
            self.name = None

    def rename(self, old: str, new: str) -> str:
        """Rename the saved ``old`` to ``new`` (trimmed); the open conversation follows the rename.

        Returns:
            the trimmed new name.

        Raises:
            StoreError: blank or taken name, no such conversation, or a failed write.
        """
        renamed = self.store.rename(old, new)
        if self.name == old:
            self.name = renamed
        return renamed

    def new_chat(self) -> None:
        """Start an empty, unnamed conversation."""
        self.messages = []
        self.name = None
        self._saved = 0
        self._rewrite = False
        self._branch = None
        self.save_error = None
        self.budget = None
        self.rebuild()


#: Words and characters an automatic title takes from the first message.
TITLE_WORDS, TITLE_CHARS = 6, 40


def auto_title_of(message: Message) -> str:
    """A conversation title from a message: its first ``TITLE_WORDS`` words, at most ``TITLE_CHARS``
    characters (cut at a word, with "…"); the first file's name when the text is empty; else "New chat"."""
    words = re.sub(r"\s+", " ", message.content).strip().split(" ")
    title = " ".join(words[:TITLE_WORDS]).strip()
    if len(words) > TITLE_WORDS or len(title) > TITLE_CHARS:
        cut = title[:TITLE_CHARS].rsplit(" ", 1)[0] if len(title) > TITLE_CHARS else title
        title = (cut or title[:TITLE_CHARS]).rstrip(" ,.;:") + "…"
    if not title.strip("…"):
        title = message.attachments[0]["name"] if message.attachments else "New chat"
    return title
