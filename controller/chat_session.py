"""What both chat pages share: the session's messages, relaying a streamed reply with bounded
retries, Retry and fallback, and the context budget of the last request.

A reply is relayed delta by delta. When it ends, it is kept as a complete assistant message.
When it fails or is cut off (an error, a stop, a rerun), the text received so far is kept
marked ``incomplete`` (and ``stopped`` when the reader stopped it), never as a complete reply,
and ``ChatError`` explains what happened.

Regenerate and edit keep what they replace as a version of the message (``model.versions``);
files given with a message are read here and their text, cut to the context budget, is sent
with it (``Message.attachments``).
A failure before any text arrived is retried as ``utils.llm.retry_delay`` says (at most
``MAX_ATTEMPTS`` HTTP attempts per message, this being the only layer that retries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from llama_index.core.base.llms.types import MessageRole
from llama_index.core.utils import get_tokenizer

from model.message import Message
from model.versions import add_version, choose_version
from utils.documents import DocumentError, read_text
from utils.llm import LLMConfig, explain_provider_error, is_fallback_worthy, retry_delay

#: Share of the tokens left next to the typed text that attached files may take; the rest keeps
#: room for the conversation so far.
ATTACHMENT_SHARE = 0.6


def fit_attachment(text: str, budget: int, count: Callable[[str], list]) -> str:
    """Return the longest start of ``text`` that is at most ``budget`` tokens long.

    Args:
        text: a file's text.
        budget: tokens it may take (at least 0).
        count: the tokenizer (``memory.tokenizer_fn``: text → tokens), whose length is counted.

    Returns:
        ``text`` itself when it fits, else its start cut at a character (an approximation from the
        characters-per-token ratio, shrunk until it fits), or "" when the budget is 0.
    """
    tokens = len(count(text))
    if tokens <= budget:
        return text
    cut = int(len(text) * budget / max(tokens, 1))
    while cut > 0 and len(count(text[:cut])) > budget:
        cut = int(cut * 0.9)
    return text[:cut]


#: Providers reached over the network, for which "Answer with the local model instead" is offered.
REMOTE_PROVIDERS = ("groq", "openai", "openai_like")


def _close(deltas: Iterator[str]) -> None:
    """Close a generator of deltas (and so whatever stream it reads); other iterators are left."""
    close = getattr(deltas, "close", None)
    if close is not None:
        close()


class ChatError(Exception):
    """A reply could not be produced; ``str(error)`` is a sentence for the user.

    Attributes:
        can_fall_back: True when answering with the local model instead is worth offering
            (a remote provider failed with a connection error or a server error).
        refused_text: the user's text when it was refused before being sent (too long), so the
            view can give it back; None otherwise (the text is then kept in the conversation).
    """

    def __init__(self, message: str, can_fall_back: bool = False, refused_text: str | None = None) -> None:
        super().__init__(message)
        self.can_fall_back = can_fall_back
        self.refused_text = refused_text


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """What went to the model for the last reply.

    Attributes:
        sent_messages: messages sent, counting the new one and the system prompt.
        sent_tokens: their size in tokens, as llama-index's tokenizer counts them.
        left_out: older messages left out to fit the context window.
        token_limit: tokens available for the prompt (context window minus room for the reply).
    """

    sent_messages: int
    sent_tokens: int
    left_out: int
    token_limit: int


class ChatSession:
    """Messages of one conversation in one browser tab, and the model that answers.

    Attributes:
        config: the provider, model and limits in use.
        messages: the conversation so far, oldest first.
        attempts: HTTP attempts made for the last message (1 to MAX_ATTEMPTS).
        budget: the ContextBudget of the last request, or None before the first.
        token_limit: tokens a request may carry (set by subclasses).
    """

    token_limit: int = 2048

    def __init__(self, config: LLMConfig, messages: list[Message] | None = None) -> None:
        self.config = config
        self.messages: list[Message] = list(messages or [])
        self.attempts = 0
        self.budget: ContextBudget | None = None
        self._branch: tuple[int, list[Message]] | None = None  # what a regenerate or edit replaces

    def pending_user_text(self) -> str | None:
        """The text of the last user message (with its files' text) if no complete reply follows it
        (what Retry sends), else None."""
        for message in reversed(self.messages):
            if message.role.value == "user":
                return message.model_text()
            if not message.incomplete:
                return None
        return None

    # ----- the user's message and its files ------------------------------------------------
    def _user_message(self, text: str) -> Message:
        """The Message stored for the user's ``text`` (subclasses add their marks or refuse)."""
        return Message.user(text)

    def new_user_message(
        self, text: str, files: Sequence[tuple[str, bytes]] = (), attachments: Sequence[dict] = ()
    ) -> Message:
        """The user's message for ``text`` with the text of ``files`` attached, cut to fit.

        Args:
            text: what the user typed.
            files: ``(file name, bytes)`` dropped into the chat box; read as the knowledge base reads
                them (.txt, .md, .pdf, .docx, .csv, .xlsx).
            attachments: files already read (kept when a message is edited).

        Returns:
            a user Message whose ``attachments`` hold each file's name, the text sent (its start,
            when the whole does not fit: together the files take at most ``ATTACHMENT_SHARE`` of
            the tokens left next to ``text`` and the system prompt) and its length in characters.

        Raises:
            ChatError: a file is not supported or cannot be read; the sentence names it, and
                ``refused_text`` holds ``text`` (nothing is added).
        """
        message = self._user_message(text)
        if not files:
            return replace(message, attachments=tuple(attachments))
        read = []
        for name, data in files:
            try:
                read.append((name, read_text(name, data)))
            except DocumentError as exc:
                raise ChatError(
                    f"The file could not be used: {exc} Your message was not sent; it is below.", refused_text=text
                ) from exc
        count = get_tokenizer()
        fixed = len(count(text)) + len(count(self.config.system_prompt or ""))
        fixed += sum(len(count(a["text"])) for a in attachments)
        share = max(0, int((self.token_limit - fixed) * ATTACHMENT_SHARE)) // len(read)
        found = list(attachments)
        for name, whole in read:
            used = fit_attachment(whole, share, count)
            found.append({"name": name, "text": used, "used_chars": len(used), "total_chars": len(whole)})
        return replace(message, attachments=tuple(found))

    def set_config(self, config: LLMConfig) -> None:
        """Use ``config`` from the next message on (subclasses rebuild their model here)."""
        self.config = config

    def stream_reply(
        self, text: str, files: Sequence[tuple[str, bytes]] = (), attachments: Sequence[dict] = ()
    ) -> Iterator[str]:
        """Add the user's ``text`` (with ``files``, see ``new_user_message``) and return the reply's
        text deltas as they arrive (subclasses).

        Raises:
            ChatError: ``text`` or a file was refused (nothing is added), or, while iterating, the
                provider failed.
        """
        raise NotImplementedError

    # ----- versions: regenerate, edit, choose ----------------------------------------------
    def regenerate(self) -> Iterator[str]:
        """Answer the last user message again; the answer it replaces is kept as a version.

        The old answer leaves ``messages`` at once (so a view can draw the conversation without
        it); the returned generator yields the new reply's text deltas. When no new text arrives
        (a failure), the old answer comes back as it was.

        Raises:
            ChatError: at once, the last message is not an answer to a user message; while
                iterating, the provider failed.
        """
        index = len(self.messages) - 1
        if index < 1 or self.messages[index].role != MessageRole.ASSISTANT:
            raise ChatError("There is no answer to regenerate.")
        if self.messages[index - 1].role != MessageRole.USER:
            raise ChatError("There is no answer to regenerate.")
        old = self.messages[index:]
        del self.messages[index:]
        self._branch = (index, old)
        return self._regenerated(index, old)

    def _regenerated(self, index: int, old: list[Message]) -> Iterator[str]:
        """The reply to the user message before ``index``; puts ``old`` back if none arrives."""
        try:
            yield from self._resend(self.messages[index - 1].model_text())
        finally:
            self._merge_branch()
            if self._branch is not None:  # no new version arrived: the old answer stays
                self._branch = None
                self.messages[index:] = old
                self._changed()

    def edit(self, index: int, text: str) -> Iterator[str]:
        """Send ``text`` in place of user message ``index``: a new branch from there.

        The old message and everything after it are kept as a version of that message; the
        memory is rebuilt from the messages before it. Files attached to the old message stay.

        Returns:
            the reply's text deltas (see ``stream_reply``).

        Raises:
            ChatError: ``index`` is not a user message, or ``text`` was refused (nothing changes),
                or, while iterating, the provider failed (the edited message stays, for Retry).
        """
        if not 0 <= index < len(self.messages) or self.messages[index].role != MessageRole.USER:
            raise ChatError("Only your own messages can be edited.")
        old = self.messages[index:]
        del self.messages[index:]
        self._branch = (index, old)
        self._truncated()
        try:
            return self.stream_reply(text, attachments=old[0].attachments)
        except ChatError:
            self._branch = None
            self.messages[index:] = old
            self._truncated()
            raise

    def choose_version(self, index: int, choice: int) -> None:
        """Make version ``choice`` (0-based) of message ``index`` the chosen one, with its branch.

        Raises:
            IndexError: no such message or version.
        """
        self.messages = choose_version(self.messages, index, choice)
        self._changed()

    def _merge_branch(self) -> bool:
        """Once the new version of a regenerated or edited message is in ``messages``, keep the old
        branch as a version of it; return True if it did (earlier messages changed)."""
        if self._branch is None:
            return False
        index, old = self._branch
        if len(self.messages) <= index:
            return False
        self._branch = None
        self.messages = add_version(self.messages, index, old)
        return True

    def _changed(self) -> None:
        """Messages before the end changed (a version chosen, a version kept): subclasses rebuild and save."""

    def _truncated(self) -> None:
        """Messages were cut at an edit: subclasses rebuild their memory from ``messages``."""

    def retry(self, fallback: LLMConfig | None = None) -> Iterator[str]:
        """Send the last user message again (after a failure), optionally to ``fallback`` instead.

        Args:
            fallback: another model (the local one) for this reply only; None uses ``config``.

        Raises:
            ChatError: there is no message waiting for a reply, or the provider failed again.
        """
        text = self.pending_user_text()
        if text is None:
            raise ChatError("There is no message waiting for a reply.")
        original = self.config
        if fallback is not None:
            self.set_config(fallback)
        try:
            yield from self._resend(text)
        finally:
            if fallback is not None:
                self.set_config(original)

    def _resend(self, text: str) -> Iterator[str]:
        """Yield the reply to ``text``, the pending user message already in ``messages``."""
        raise NotImplementedError

    def _relay(
        self,
        start: Callable[[], Iterable[str]],
        on_message: Callable[[Message], None],
        before_retry: Callable[[], None] = lambda: None,
    ) -> Iterator[str]:
        """Yield the deltas of a reply, then append the assistant message and call ``on_message``.

        Args:
            start: makes one HTTP attempt and returns the text deltas of the reply.
            on_message: called with each message appended (the assistant's, complete or not).
            before_retry: called before another attempt, to reset state the failed one left.

        Raises:
            ChatError: the provider failed; the partial text, if any, was kept as incomplete.
        """
        parts: list[str] = []
        self.attempts = 0
        while True:
            self.attempts += 1
            deltas: Iterator[str] = iter(())
            try:
                deltas = iter(start())
                for delta in deltas:
                    if delta:
                        parts.append(delta)
                        yield delta
                break
            except GeneratorExit:  # the reader stopped: Stop, a rerun or a closed connection
                _close(deltas)  # now, not when garbage is collected: the HTTP stream closes with it
                self._keep_partial(parts, on_message, stopped=True)
                raise
            except Exception as exc:  # any provider or transport failure becomes a user message
                delay = None if parts else retry_delay(exc, self.attempts)
                if delay is not None:
                    time.sleep(delay)
                    before_retry()
                    continue
                kept = self._keep_partial(parts, on_message)
                message = explain_provider_error(exc, self.config)
                if kept:
                    message += " The part of the reply that arrived is kept, marked as incomplete."
                fall_back = is_fallback_worthy(exc) and self.config.provider in REMOTE_PROVIDERS
                raise ChatError(message, can_fall_back=fall_back) from exc
        reply = Message.assistant("".join(parts).strip(), model=self.config.model)
        self.messages.append(reply)
        on_message(reply)

    def _keep_partial(self, parts: list[str], on_message: Callable[[Message], None], stopped: bool = False) -> bool:
        """Append the partial reply as an incomplete message (``stopped`` when the reader stopped
        it); return True if there was any text."""
        text = "".join(parts).strip()
        if not text:
            return False
        partial = replace(Message.assistant(text, incomplete=True, model=self.config.model), stopped=stopped)
        self.messages.append(partial)
        on_message(partial)
        return True
