"""A conversation saved by name, shared by the memory and knowledge-base pages.

One turn (DESIGN.md): the user message is appended and, if the conversation has a name, saved
before the model is called; the reply is streamed; the assistant message is appended and saved
when the stream ends. A cut-off reply is saved marked incomplete. Subclasses say how a turn is
answered (``_turn``): the memory page through an OpenAIAgent, the knowledge-base page through a
chat engine over the knowledge base.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.agent import build_memory, make_llm
from controller.chat_session import ChatError, ChatSession
from controller.context import before_pending, fit_memory, prompt_token_limit
from model.message import Message
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
    """

    def __init__(self, config: LLMConfig, store: Store) -> None:
        super().__init__(config)
        self.store = store
        self.name: str | None = None
        self.save_error: str | None = None
        self._saved = 0  # messages[:_saved] are in the store
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
    def stream_reply(self, text: str) -> Iterator[str]:
        """Add and auto-save the user's ``text``, then return the reply's text deltas as they arrive.

        Raises:
            ChatError: the message is too long (nothing is added; ``refused_text`` holds it), or,
                while iterating, the provider failed: the user's message stays in ``messages`` and
                in the saved file, and the memory is rebuilt from ``messages``.
        """
        message = self._user_message(text)
        self.budget = fit_memory(self.memory, text, self.config.system_prompt, self.token_limit)
        self.messages.append(message)
        self._autosave()
        return self._turn(text)

    def _user_message(self, text: str) -> Message:
        """The Message stored for the user's ``text`` (subclasses add their marks or refuse)."""
        return Message.user(text)

    def _resend(self, text: str) -> Iterator[str]:
        """Memory from the messages before the pending ``text``, then the reply to it."""
        self.rebuild(before_pending(self.messages, text))
        self.budget = fit_memory(self.memory, text, self.config.system_prompt, self.token_limit)
        yield from self._turn(text)

    def _turn(self, text: str) -> Iterator[str]:
        """Yield the reply to ``text`` (already in ``messages``), then append and save it."""
        raise NotImplementedError

    def _autosave(self) -> None:
        """Append the messages not saved yet under ``name``, if there is one.

        Appending (not replacing) means a turn saved by another tab or instance meanwhile is kept.
        A failure is kept in ``save_error``, not raised; the next save appends what is still unsaved.
        """
        if self.name is None:
            return
        try:
            self.store.append(self.name, self.messages[self._saved :])
            self._saved = len(self.messages)
            self.save_error = None
        except StoreError as exc:
            self.save_error = str(exc)

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
        self.save_error = None
        self.budget = None
        self.rebuild()
