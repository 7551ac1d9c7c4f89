"""The turn runner: one conversation, the engine that answers in it and the store it is saved in.

The pages, the chat server (``api/``) and the model workers (``worker/``) all chat through a
``Chat``. One turn on a saved conversation:

1. the user's message (with its files' text, cut to the context budget) is appended and, if the
   conversation has a name, saved now, so a crash loses nothing;
2. the engine streams the reply (``controller.turn.Turn``: retries, Stop, the partial reply);
3. the reply is appended and saved when it ends (a cut-off reply is saved marked incomplete).

New messages are appended to the store (never replacing what another tab or instance added
meanwhile); a change to earlier messages (a version chosen, a rating) rewrites the conversation.
Regenerating and editing keep what they replace as versions (``model.versions``). A reply cut at
the token limit can be continued (``continue_reply``): the model is asked to go on, and its text
extends the same message. With ``auto_title``, a new conversation is saved from its first message
under the first words of it.

A page runs its turns in the background (``in_background``: a ``ReplyJob``), so a reply goes on and
is saved while the page reruns or the user is elsewhere; the chat's changes are made under a lock,
as that thread appends the reply while the page reads the messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from llama_index.core.memory import ChatMemoryBuffer

from controller.context import ContextBudget, read_attachments
from controller.engines import ChatEngine
from controller.errors import ChatError
from controller.reply_job import ReplyJob
from controller.speech import transcriber_for
from controller.turn import Turn
from model.attachments import AttachmentReader, MemoryAttachments
from model.conversation import Conversation, auto_title_of
from model.message import Attachment, Feedback, Message, utc_now_iso
from model.store import BaseConversationStore, StoreError
from model.versions import add_version, choose_version
from utils.providers import LLMConfig
from utils.speech import SpeechError, transcribe

#: What the model is asked, out of sight, to continue a reply cut at the token limit.
CONTINUE_PROMPT = "Continue your last reply exactly where it stopped, without repeating anything."


class Chat:
    """A conversation, the engine that answers in it, and (optionally) the store it is saved in.

    Args:
        engine: what answers (``controller.engines``).
        store: where named conversations are saved, or None (nothing is saved: Simple Chat, ``/v1``).
        conversation: the conversation to continue; a new, empty one by default.
        auto_title: save a new conversation from its first message under an automatic title
            (the pages); False keeps it unsaved until ``save_as`` (the API and the worker).
    """

    def __init__(
        self,
        engine: ChatEngine,
        store: BaseConversationStore | None = None,
        conversation: Conversation | None = None,
        auto_title: bool = False,
    ) -> None:
        self._engine, self._store, self._auto_title = engine, store, auto_title
        self._attachments: BaseConversationStore | MemoryAttachments = (
            store if store is not None else MemoryAttachments()
        )
        self._notices: tuple[str, ...] = ()
        self._conversation = conversation or Conversation()
        self._saved = len(self._conversation.messages) if self._conversation.name else 0  # messages in the store
        self._rewrite = False  # earlier messages changed: the next save replaces the conversation
        self._branch: tuple[int, list[Message]] | None = None  # what a regenerate or edit replaces
        self._tools: tuple[str, ...] = self._conversation.tools()
        self._web_search = False
        self._assistant: str | None = self._conversation.assistant()
        self._budget: ContextBudget | None = None
        self._save_error: str | None = None
        self._turn: Turn | None = None
        self._job: ReplyJob | None = None
        self._lock = threading.RLock()  # the reply's thread appends while the page reads

    # ----- what callers may read ------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The name the conversation is saved under, or None while it is unsaved."""
        return self._conversation.name

    @property
    def messages(self) -> list[Message]:
        """A copy of the conversation's messages, oldest first."""
        return list(self._conversation.messages)

    @property
    def store(self) -> BaseConversationStore | None:
        """Where the conversation is saved, or None."""
        return self._store

    @property
    def attachments(self) -> AttachmentReader:
        """Where the messages' images and recordings are read from (the store, or this chat's memory)."""
        return self._attachments

    @property
    def notices(self) -> tuple[str, ...]:
        """Sentences about the last message's files that were left out (e.g. no OCR here), or ()."""
        return self._notices

    @property
    def engine(self) -> ChatEngine:
        """The engine that answers."""
        return self._engine

    @property
    def config(self) -> LLMConfig:
        """The provider and model that answer."""
        return self._engine.config

    @property
    def tools(self) -> tuple[str, ...]:
        """The tool ids new messages are sent with (those of the last user message after a load)."""
        return self._tools

    @property
    def budget(self) -> ContextBudget | None:
        """What the last request carried, or None before the first."""
        return self._budget

    @property
    def save_error(self) -> str | None:
        """The last failed save, as a sentence for the user, or None."""
        return self._save_error

    @property
    def attempts(self) -> int:
        """HTTP attempts made for the last reply (0 before the first)."""
        return self._turn.attempts if self._turn is not None else 0

    @property
    def job(self) -> ReplyJob | None:
        """The reply running (or last run) in the background, or None."""
        return self._job

    @property
    def replying(self) -> bool:
        """True while a background reply is being written."""
        return self._job is not None and not self._job.done

    def memory(self) -> ChatMemoryBuffer:
        """The memory the next turn starts from (the complete messages, tool calls rebuilt in order)."""
        return self._engine.memory(self._conversation.messages)

    def pending_user_text(self) -> str | None:
        """The text of the user message that waits for an answer (what Retry sends), or None."""
        message = self._conversation.pending_user_message()
        return None if message is None else message.model_text()

    # ----- settings -----------------------------------------------------------------------------
    def use(self, engine: ChatEngine) -> None:
        """Answer with ``engine`` from the next turn on (a new model, tools or knowledge base)."""
        self._engine = engine

    def set_tools(self, tool_ids: Sequence[str]) -> None:
        """Send the next messages with the tools ``tool_ids``, and remember them with the
        conversation: they are stored on its last user message, saved at once."""
        self._tools = tuple(tool_ids)
        messages = self._conversation.messages
        last = self._conversation.last_user_index()
        if last is not None and messages[last].tools != self._tools:
            messages[last] = replace(messages[last], tools=self._tools)
            self._changed()

    @property
    def web_search(self) -> bool:
        """True when new messages are answered after a web search."""
        return self._web_search

    def set_web_search(self, on: bool) -> None:
        """Search the web before answering each new message (``on``), or not."""
        self._web_search = on

    @property
    def assistant(self) -> str | None:
        """The id of the assistant new messages are sent to (the last user message's after a
        load), or None for Parley itself."""
        return self._assistant

    def set_assistant(self, assistant_id: str | None) -> None:
        """Send the next messages to assistant ``assistant_id`` (None: Parley); each user message
        keeps the id, so a loaded conversation comes back with its assistant."""
        self._assistant = assistant_id

    # ----- turns --------------------------------------------------------------------------------
    def send(
        self,
        text: str,
        files: Sequence[tuple[str, bytes]] = (),
        attachments: Sequence[Attachment] = (),
        turn_id: str | None = None,
    ) -> Turn:
        """Add the user's ``text`` (with ``files``' text) and start the reply.

        Args:
            text: what the user typed.
            files: ``(file name, bytes)`` dropped into the chat box (.txt, .md, .pdf, .docx, .csv, .xlsx,
                and images: .png, .jpg, .jpeg, .webp, .gif; stored by SHA-256, sent as images to a model
                that sees them, else as the text OCR reads in them).
            attachments: files already read (kept when a message is edited, or a recording).
            turn_id: an id the message and its reply are marked with (the chat server's turns), or None.

        Returns:
            the reply's Turn; the user's message is already saved.

        Raises:
            ChatError: the message is too long, a file cannot be read or the engine cannot answer
                yet; nothing is added and ``refused_text`` holds ``text``.
        """
        engine = self._engine
        config = engine.config
        found = read_attachments(
            text,
            files,
            attachments,
            config.system_prompt,
            engine.token_limit(),
            keep=self._attachments,
            vision=engine.sees_images(),
        )
        self._notices = found.notices
        marked = replace(
            Message.user(text),
            attachments=found.attachments,
            tools=self._tools,
            turn_id=turn_id,
            web_search=self._web_search,
            assistant_id=self._assistant,
        )
        message = engine.user_message(marked)
        history = self._conversation.messages
        self._budget = engine.budget(history, message.model_text())
        self._append(message)
        return self._start(engine, history[:-1], message, turn_id=turn_id)

    def send_spoken(self, data: bytes, mime: str = "audio/wav", name: str = "Recording") -> Turn:
        """Send what the user said: the recording's transcript becomes the message (``transcriber_for``
        the model in use), and the recording is kept with it as an attachment.

        Args:
            data: the recording (WAV from the chat box; any type FFmpeg reads).
            mime: its type.
            name: its name, for sentences.

        Returns:
            the reply's Turn.

        Raises:
            ChatError: no speech was heard, the recording is refused (too long, too large, broken) or
                the transcription service failed; nothing is sent.
        """
        try:
            text = transcribe(data, name, transcriber_for(self._engine.config))
            digest = self._attachments.put_attachment(data, mime)
        except (SpeechError, StoreError) as exc:
            raise ChatError(f"Your recording was not sent: {exc}") from exc
        recording = Attachment(name=name, text="", sha256=digest, mime=mime)
        return self.send(text, attachments=(recording,))

    def retry(self, fallback: LLMConfig | None = None, without_web: bool = False) -> Turn:
        """Answer the user message that waits for an answer again (after a failure or a stop).

        Args:
            fallback: another model (the local one) for this reply only; None keeps the engine's.
            without_web: answer without searching the web, though the message asked for it (after
                the search failed); the stored message is not changed.

        Raises:
            ChatError: no message waits for an answer, or it no longer fits (``refused_text``).
        """
        index = self._conversation.pending_user_index()
        if index is None:
            raise ChatError("There is no message waiting for a reply.")
        engine = self._engine.with_config(fallback) if fallback is not None else self._engine
        return self._answer(engine, index, without_web=without_web)

    def regenerate(self) -> Turn:
        """Answer the last user message again; the answer it replaces is kept as a version.

        The old answer leaves ``messages`` at once (so a page can draw the conversation without
        it). When no new text arrives (a failure), the old answer comes back as it was.

        Raises:
            ChatError: the last message is not an answer to a user message.
        """
        messages = self._conversation.messages
        index = len(messages) - 1
        if index < 1 or not messages[index].is_reply or not messages[index - 1].is_user:
            raise ChatError("There is no answer to regenerate.")
        old = messages[index:]
        del messages[index:]
        self._branch = (index, old)
        return self._answer(self._engine, index - 1, on_end=lambda: self._restore(index, old))

    def edit(self, index: int, text: str) -> Turn:
        """Send ``text`` in place of user message ``index``: a new branch from there.

        The old message and everything after it are kept as a version of that message. Files
        attached to the old message stay.

        Raises:
            ChatError: ``index`` is not a user message, or ``text`` was refused (nothing changes).
        """
        messages = self._conversation.messages
        if not 0 <= index < len(messages) or not messages[index].is_user:
            raise ChatError("Only your own messages can be edited.")
        old = messages[index:]
        del messages[index:]
        self._branch = (index, old)
        try:
            return self.send(text, attachments=old[0].attachments)
        except ChatError:
            self._branch = None
            messages[index:] = old
            raise

    def continue_reply(self) -> Turn:
        """Ask the model to go on with the last reply, which was cut at the token limit; the new text
        extends that message (``CONTINUE_PROMPT`` is sent, not shown or saved).

        The reply leaves ``messages`` while it is continued and comes back extended, or as it was
        when no new text arrives.

        Raises:
            ChatError: the last message is not a reply cut at the token limit.
        """
        messages = self._conversation.messages
        index = len(messages) - 1
        if index < 1 or not messages[index].is_reply or not messages[index].cut:
            raise ChatError("There is no reply cut at the token limit to continue.")
        cut = messages[index]
        history = messages[: index + 1]
        del messages[index:]
        prompt = Message.user(CONTINUE_PROMPT)
        self._budget = self._engine.budget(history, prompt.content)

        def extend(more: Message) -> None:
            raw = self._turn.raw_text if self._turn is not None else more.content
            lead = raw[: len(raw) - len(raw.lstrip())]  # the white space the model began with, kept
            joined = f"{cut.content}{lead}{more.content}"
            extended = replace(
                cut,
                content=joined,
                tool_calls=cut.tool_calls + more.tool_calls,
                incomplete=more.incomplete,
                stopped=more.stopped,
                cut=more.cut,
            )
            with self._lock:
                self._conversation.messages.append(extended)
                self._changed()

        def restore() -> None:
            with self._lock:
                if self._conversation.messages[index:] == []:
                    self._conversation.messages.append(cut)

        self._turn = Turn(self._engine, history, prompt, on_reply=extend, on_end=restore, images=self._attachments)
        return self._turn

    def in_background(self, turn: Turn, prefix: str = "") -> ReplyJob:
        """Run ``turn`` (one of this chat's) in a thread of its own; see ``ReplyJob``.

        Args:
            turn: from ``send``, ``retry``, ``regenerate``, ``edit`` or ``continue_reply``.
            prefix: text shown before the new text (the part of a continued reply already there).
        """
        self._job = ReplyJob(turn, prefix)
        return self._job

    def answer_queued(self, name: str, turn_id: str, tools: Sequence[str] | None = None) -> Turn:
        """Load ``name`` up to the user message of queued turn ``turn_id`` and start its answer.

        Later messages are left out of this chat (they stay stored); the reply is marked with
        ``turn_id`` and appended after what is stored. ``tools`` (an assistant's) are offered with
        the message in place of the stored ones, when given.

        Raises:
            StoreError: no such conversation, or the store cannot be read.
            ChatError: the conversation holds no user message of that turn.
        """
        self.load(name)
        index = self._conversation.find_turn(turn_id)
        if index is None:
            raise ChatError(f"The message of this turn is no longer in {name!r}; it may have been edited or deleted.")
        del self._conversation.messages[index + 1 :]
        self._saved = index + 1
        if tools is not None:  # in this chat only: the stored message is not rewritten
            self._conversation.messages[index] = replace(self._conversation.messages[index], tools=tuple(tools))
        return self._answer(self._engine, index, turn_id=turn_id)

    def _answer(
        self,
        engine: ChatEngine,
        index: int,
        on_end: Callable[[], None] | None = None,
        turn_id: str | None = None,
        without_web: bool = False,
    ) -> Turn:
        """The Turn answering user message ``index`` with ``engine``; the reply goes at the end (after
        a partial reply kept from an earlier attempt, which stays)."""
        messages = self._conversation.messages
        message = replace(messages[index], web_search=False) if without_web else messages[index]
        self._budget = engine.budget(messages[:index], message.model_text())
        return self._start(engine, messages[:index], message, on_end, turn_id)

    def _start(
        self,
        engine: ChatEngine,
        history: Sequence[Message],
        message: Message,
        on_end: Callable[[], None] | None = None,
        turn_id: str | None = None,
    ) -> Turn:
        def ended() -> None:
            if turn.record.budget is not None:  # the engine added web passages: what was really sent
                self._budget = turn.record.budget
            if on_end is not None:
                on_end()

        turn = self._turn = Turn(
            engine, history, message, on_reply=self._append, on_end=ended, turn_id=turn_id, images=self._attachments
        )
        return turn

    def _append(self, message: Message) -> None:
        """Add ``message`` at the end, keep a regenerated or edited branch as its version, and save."""
        with self._lock:
            self._conversation.messages.append(message)
            if self._branch is not None:
                index, old = self._branch
                self._branch = None
                self._conversation.messages[:] = add_version(self._conversation.messages, index, old)
                self._rewrite = True
            self._autosave()

    def _restore(self, index: int, old: list[Message]) -> None:
        """After a regenerate: no new version arrived, so the old answer comes back."""
        with self._lock:
            if self._branch is not None:
                self._branch = None
                self._conversation.messages[index:] = old

    # ----- changing earlier messages ------------------------------------------------------------
    def choose_version(self, index: int, choice: int) -> None:
        """Make version ``choice`` (0-based) of message ``index`` the chosen one, with its branch; saved.

        Raises:
            IndexError: no such message or version.
        """
        self._conversation.messages[:] = choose_version(self._conversation.messages, index, choice)
        self._changed()

    def set_feedback(self, index: int, rating: int | None, comment: str = "") -> None:
        """Rate reply ``index``: ``rating`` 1 (thumbs up), -1 (thumbs down) or None (no rating); saved at once.

        Raises:
            ValueError: ``index`` is not a reply or ``rating`` is not 1, -1 or None.
        """
        message = self._conversation.messages[index]
        if not message.is_reply or rating not in (1, -1, None):
            raise ValueError("only a reply can be rated, with 1 or -1")
        feedback = None if rating is None else Feedback(rating, comment.strip(), utc_now_iso())
        self._conversation.messages[index] = replace(message, feedback=feedback)
        self._changed()

    def _changed(self) -> None:
        """Earlier messages changed: the next save replaces the conversation; save now."""
        with self._lock:
            self._rewrite = True
            self._autosave()

    # ----- saving -------------------------------------------------------------------------------
    def _autosave(self) -> None:
        """Save what is not saved yet under ``name``; with ``auto_title``, name a new conversation.

        A failure is kept in ``save_error``, not raised; the next save writes what is still unsaved.
        """
        store, conversation = self._store, self._conversation
        if store is None or not conversation.messages:
            return
        try:
            if conversation.name is None:
                if not self._auto_title:
                    return
                conversation.name = store.save(self._unique_title(store), conversation.messages, backup=False)
            elif self._rewrite or self._saved > len(conversation.messages):
                store.save(conversation.name, conversation.messages, backup=False)
            else:
                store.append(conversation.name, conversation.messages[self._saved :])
            self._saved, self._rewrite, self._save_error = len(conversation.messages), False, None
        except StoreError as exc:
            self._save_error = str(exc)

    def _unique_title(self, store: BaseConversationStore) -> str:
        """``auto_title_of`` the first user message, with " (2)", " (3)"… if that name is taken.

        Raises:
            StoreError: the store cannot be read.
        """
        messages = self._conversation.messages
        title = auto_title_of(next((m for m in messages if m.is_user), messages[0]))
        candidate, number = title, 1
        while store.exists(candidate):
            number += 1
            candidate = f"{title} ({number})"
        return candidate

    def _store_or_fail(self) -> BaseConversationStore:
        if self._store is None:
            raise StoreError("This chat is not saved anywhere.")
        return self._store

    def sync(self) -> bool:
        """Take in messages that another tab or instance saved to this conversation since.

        Does nothing while some messages are not saved yet (they would be lost), or when the
        conversation is unnamed or was deleted.

        Returns:
            True if the messages changed.

        Raises:
            StoreError: the store cannot be read.
        """
        conversation = self._conversation
        if self._store is None or conversation.name is None or self.replying:
            return False
        with self._lock:
            if self._saved != len(conversation.messages):
                return False
            stored = self._store.get(conversation.name)
            same = stored is not None and len(stored) == len(conversation.messages)
            if stored is None or (same and stored[-1:] == conversation.messages[-1:]):
                return False  # others only ever add messages, so the same count and last message: no change
            conversation.messages[:] = stored
            self._saved = len(stored)
            return True

    def save_as(self, name: str) -> str:
        """Save the conversation under ``name`` (trimmed); later turns are saved there. A conversation
        saved under another name (e.g. its automatic title) is renamed, in one atomic store operation
        that replaces a conversation already called ``name`` (the page asks first).

        Returns:
            the trimmed name.

        Raises:
            StoreError: empty name, no store, or a failed write; the messages stay in the chat.
        """
        store = self._store_or_fail()
        old = self._conversation.name
        if old is None or old == name.strip():
            saved = store.save(name, self._conversation.messages)
            self._saved, self._rewrite, self._save_error = len(self._conversation.messages), False, None
        else:  # one atomic rename: a turn another instance adds meanwhile moves with it or stays, never lost
            self._autosave()
            if self._save_error is not None:
                raise StoreError(self._save_error)
            saved = store.rename(old, name, replace=True)
        self._conversation.name = saved
        return saved

    def load(self, name: str) -> None:
        """Replace this chat's conversation with the saved ``name``, and its tools with that one's.

        Raises:
            StoreError: no such conversation, or the store cannot be read.
            ChatError: a reply is being written in the background (it would land in the other
                conversation): stop it first, or open the other conversation in another Chat.
        """
        self._not_replying()
        messages = self._store_or_fail().get(name)
        if messages is None:
            raise StoreError(f"There is no saved conversation called {name!r}; it may have been deleted.")
        self._reset(Conversation(name, messages))

    def new(self) -> None:
        """Start an empty, unnamed conversation.

        Raises:
            ChatError: a reply is being written in the background (see ``load``).
        """
        self._not_replying()
        self._reset(Conversation())

    def _not_replying(self) -> None:
        if self.replying:
            raise ChatError("A reply is still being written in this conversation; stop it first.")

    def _reset(self, conversation: Conversation) -> None:
        self._conversation, self._job = conversation, None
        self._saved = len(conversation.messages) if conversation.name else 0
        self._rewrite, self._branch, self._budget, self._save_error = False, None, None, None
        self._tools = conversation.tools()
        self._assistant = conversation.assistant()

    def delete(self, name: str) -> None:
        """Delete the saved ``name``; if it is this conversation, it stays open but unnamed.

        Raises:
            StoreError: the write failed; nothing changed.
        """
        self._store_or_fail().delete(name)
        if self._conversation.name == name:
            self._conversation.name = None
            self._saved = 0

    def rename(self, old: str, new: str) -> str:
        """Rename the saved ``old`` to ``new`` (trimmed); this conversation follows the rename.

        Returns:
            the trimmed new name.

        Raises:
            StoreError: blank or taken name, no such conversation, or a failed write.
        """
        renamed = self._store_or_fail().rename(old, new)
        if self._conversation.name == old:
            self._conversation.name = renamed
        return renamed
