"""The conversation store contract, which every backend keeps: ``JsonFileStore`` (the default),
``PostgresStore`` and ``RedisStore`` (chosen by CONVERSATIONS_URL, see ``model.stores.open_store``).

A backend implements the primitives (``names``, ``get``, ``save``, ``append``, ``delete``,
``rename``, ``load_all``); search, import, paging, the clash rules and the retry loop of the
database backends are written once here. ``append`` is what a chat turn uses: it adds messages at
the end of what is stored *now*, so two instances writing to one conversation at once both keep
their messages (no lost update).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self, TypeVar

from model.assistant import BUILT_INS, DEFAULT_ASSISTANT, Assistant, InvalidAssistantError, name_key, slug_of
from model.attachments import (
    GRACE_SECONDS,
    MAX_ATTACHMENT_BYTES,
    Blob,
    BlobCache,
    digest_of,
    referenced,
    valid_digest,
)
from model.message import Message

Conversations = dict[str, list[Message]]
T = TypeVar("T")
#: Attempts of one operation when a database connection breaks (a restarted server).
ATTEMPTS = 3
#: Pause before attempt n + 1, in seconds: ``RETRY_PAUSE * n`` (0.5 s, then 1 s).
RETRY_PAUSE = 0.5
#: The owner of the preferences while there are no accounts: the person at this machine.
LOCAL_OWNER = "local"
#: Largest stored preferences, in bytes of JSON (a system prompt and a few settings fit easily).
MAX_PREFERENCES_BYTES = 65_536
#: Small JSON objects kept by key beside the conversations, for every owner: each owner's settings
#: (``"preferences"``, by owner), who signed in (``"accounts"``, by subject), the per-person API keys
#: (``"api_keys"``, by key id: owner, name, salted hash, revocation) and when each was last used
#: (``"api_key_uses"``, by key id: kept apart so that noting a use never overwrites a revocation).
RecordKind = Literal["preferences", "accounts", "api_keys", "api_key_uses"]
#: Longest owner id, in characters (an OpenID Connect subject is at most 255 ASCII characters).
MAX_OWNER_CHARS = 255


class StoreError(Exception):
    """A conversation could not be read or written; ``str(error)`` is a sentence for the user."""


class Summary(NamedTuple):
    """One line of a conversation list: its name, message count, newest message time (ISO 8601, or
    ""), and the knowledge base it was held with (a Knowledge Base page chat), or None."""

    name: str
    messages: int
    last_activity: str
    knowledge_base: str | None = None


class AccountRecord(NamedTuple):
    """Someone who signed in: their provider subject (the owner id of their data), e-mail and name
    (for display, as the provider last said), and when they were last seen (ISO 8601 UTC, or "")."""

    subject: str
    email: str
    name: str
    last_seen: str = ""


def summary_of(name: str, messages: list[Message]) -> Summary:
    """The ``Summary`` of conversation ``name`` holding ``messages``."""
    kb = next((m.knowledge_base for m in messages if m.knowledge_base), None)
    return Summary(name, len(messages), last_activity(messages), kb)


def normalize_name(name: str) -> str:
    """Return ``name`` trimmed of surrounding white space.

    Raises:
        StoreError: if nothing is left, since a conversation needs a visible name, or the name holds
            U+0000 (which not every backend can store).
    """
    cleaned = (name or "").strip()
    if not cleaned:
        raise StoreError("Please enter a name for the conversation.")
    if "\x00" in cleaned:
        raise StoreError("A conversation's name cannot contain the NUL character (U+0000).")
    return cleaned


def preferences_json(values: dict[str, Any]) -> str:
    """``values`` as the JSON text a store keeps.

    Raises:
        StoreError: ``values`` is not a JSON object, or larger than ``MAX_PREFERENCES_BYTES``.
    """
    try:
        text = json.dumps(values, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"These settings cannot be saved ({exc}).") from exc
    if not isinstance(values, dict) or len(text.encode("utf-8")) > MAX_PREFERENCES_BYTES:
        raise StoreError(f"Settings are saved as one JSON object of at most {MAX_PREFERENCES_BYTES:,} bytes.")
    return text


def preferences_of(text: str | bytes | None) -> dict[str, Any]:
    """The preferences in a store's JSON text; empty for none, or for text that is not a JSON object."""
    try:
        values = json.loads(text) if text else {}
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}


def check_owner(owner: str) -> str:
    """``owner`` if it can own data: a non-empty id (the sign-in provider's subject) of at most
    ``MAX_OWNER_CHARS`` characters, without control characters.

    Raises:
        StoreError: it cannot.
    """
    if not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_CHARS or not owner.isprintable():
        raise StoreError(f"An owner is a printable id of 1 to {MAX_OWNER_CHARS} characters.")
    return owner


def owner_key(owner: str) -> str:
    """A short fixed-length name for ``owner`` in file names and Redis keys: the first 32 hex digits
    (128 bits) of the SHA-256 of its UTF-8 bytes, so any subject (slashes, colons, Unicode) is safe there."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


def last_activity(messages: list[Message]) -> str:
    """Return the newest message ``timestamp`` of a conversation, or ``""`` if none has one."""
    return max((m.timestamp for m in messages if m.timestamp), default="")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


class BaseConversationStore(ABC):
    """Named conversations, safe to share between threads, browser tabs and processes.

    A store holds one owner's conversations, attachments and settings: ``LOCAL_OWNER`` (the person
    at this machine, with no accounts) unless it came from ``owned_by``. Every read and write of a
    backend is limited to its owner in the query itself (a key prefix, a file, a ``WHERE owner``),
    so one person's conversation of the same name as another's is a different conversation.

    Attributes:
        location: where the conversations are, for messages to the user (a path, or a URL with
            its password masked).
        owner: whose conversations these are.
    """

    location: str = ""
    owner: str = LOCAL_OWNER
    #: Seconds an unused attachment is kept after it was stored (``model.attachments.GRACE_SECONDS``).
    attachment_grace: float = GRACE_SECONDS

    def _retrying(
        self,
        work: Callable[[], T],
        transient: tuple[type[BaseException], ...],
        unreachable: Callable[[BaseException], str],
    ) -> T:
        """Run ``work``, again (up to ``ATTEMPTS`` times, pausing ``RETRY_PAUSE`` × attempt seconds)
        when it raises one of ``transient`` (a broken connection: the server restarted).

        Args:
            work: the operation, which opens its own connection or transaction each time.
            transient: the driver's errors worth another attempt.
            unreachable: the sentence for the user once every attempt failed, from the last error.

        Raises:
            StoreError: every attempt failed with a transient error.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return work()
            except transient as exc:
                if attempt == ATTEMPTS:
                    raise StoreError(unreachable(exc)) from exc
                time.sleep(RETRY_PAUSE * attempt)
        raise AssertionError("unreachable")

    def owned_by(self, owner: str) -> BaseConversationStore:
        """The same store limited to ``owner``'s data (sharing this one's connections), or this store
        when it is already ``owner``'s.

        Args:
            owner: the signed-in person's id (the provider's subject), or ``LOCAL_OWNER``.

        Raises:
            StoreError: ``owner`` is not a valid id (``check_owner``).
        """
        return self if check_owner(owner) == self.owner else self._scoped(owner)

    @abstractmethod
    def _scoped(self, owner: str) -> BaseConversationStore:
        """A store of this backend for ``owner`` (valid and not this store's), sharing connections."""

    def _sibling(self, owner: str) -> Self:
        """A shallow copy of this store for ``owner``: the same connections, its own attachment cache."""
        sibling = copy.copy(self)
        sibling.__dict__.pop("_blob_cache", None)
        sibling.owner = owner
        return sibling

    # ----- primitives, per backend ---------------------------------------------------------
    @abstractmethod
    def names(self) -> list[str]:
        """The conversation names, newest activity first (by message ``timestamp``).

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def get(self, name: str) -> list[Message] | None:
        """A copy of the messages of ``name``, oldest first, or None if there is no such conversation.

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def save(self, name: str, messages: list[Message], backup: bool = True) -> str:
        """Save ``messages`` under ``name`` (trimmed), replacing what that name held, in one write.

        ``backup=False`` skips the backup a store with backups makes before a replace (used for
        small edits of an open conversation: a rating, a chosen version, a regenerated reply).

        Returns:
            the trimmed name.

        Raises:
            StoreError: on an empty name or a failed write (nothing changed).
        """

    @abstractmethod
    def append(self, name: str, messages: list[Message]) -> int:
        """Add ``messages`` after what ``name`` holds now (creating it if needed), in one write.

        Two writers appending to one conversation at once both keep their messages, each writer's
        in its own order.

        Returns:
            the number of messages the conversation holds afterwards.

        Raises:
            StoreError: on an empty name or a failed write (nothing changed).
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete conversation ``name``; a missing name is not an error.

        Raises:
            StoreError: the write failed (nothing changed).
        """

    @abstractmethod
    def rename(self, old: str, new: str, replace: bool = False) -> str:
        """Rename conversation ``old`` to ``new`` (trimmed), in one atomic write: a message appended to
        ``old`` meanwhile is either moved with it or kept under ``old``, never lost, and a crash
        leaves exactly one of the two names.

        Args:
            old: the conversation's name now.
            new: its new name.
            replace: True replaces a conversation already called ``new``; False refuses.

        Returns:
            the trimmed new name.

        Raises:
            StoreError: ``new`` is empty (or taken, without ``replace``), ``old`` does not exist, or
                the write failed (nothing changed).
        """

    @abstractmethod
    def load_all(self) -> Conversations:
        """Every conversation as ``{name: [Message, ...]}`` (for export and migration; reads everything).

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def _record_texts(self, kind: RecordKind, key: str | None = None) -> dict[str, str | bytes]:
        """The stored JSON text of ``kind``'s records by key (``RecordKind``), for every owner: only
        ``key``'s when given (then empty when it has none).

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def _save_record_text(self, kind: RecordKind, key: str, text: str) -> None:
        """Store ``text`` (a JSON object, checked) as ``kind``'s record ``key``, replacing what was there.

        Raises:
            StoreError: the write failed.
        """

    @abstractmethod
    def _assistant_texts(self) -> dict[str, str | bytes]:
        """Every stored assistant's JSON text, by id.

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def _write_assistant(self, assistant_id: str, key: str, text: str, create: bool) -> str | None:
        """Store assistant ``assistant_id`` (``text``, its JSON) in one atomic step, if no other
        assistant's name has ``key`` (``model.assistant.name_key``).

        Args:
            assistant_id: its id.
            key: its name's key.
            text: its stored form as JSON.
            create: True adds it (the id must be free); False replaces it (the id must exist).

        Returns:
            None when stored; ``"id"`` when creating and the id is taken, ``"missing"`` when
            replacing and there is no such id, ``"name"`` when another assistant has the name.

        Raises:
            StoreError: the write failed.
        """

    @abstractmethod
    def _delete_assistant(self, assistant_id: str) -> bool:
        """Delete assistant ``assistant_id`` and free its name; False when there was none.

        Raises:
            StoreError: the write failed.
        """

    # ----- written once, from the primitives ------------------------------------------------
    def assistants(self) -> list[Assistant]:
        """The stored assistants, by name (ignoring case); an entry that does not parse is left out.

        Raises:
            StoreError: the store cannot be read.
        """
        found = []
        for text in self._assistant_texts().values():
            try:
                found.append(Assistant.from_dict(json.loads(text)))
            except (ValueError, InvalidAssistantError):
                continue
        return sorted(found, key=lambda a: (name_key(a.name), a.id))

    def every_assistant(self) -> list[Assistant]:
        """The built-in assistants, then the stored ones (``assistants``).

        Raises:
            StoreError: the store cannot be read.
        """
        return [*BUILT_INS, *self.assistants()]

    def assistant(self, assistant_id: str) -> Assistant | None:
        """The assistant ``assistant_id`` (a built-in or a stored one), or None.

        Raises:
            StoreError: the store cannot be read.
        """
        built_in = next((a for a in BUILT_INS if a.id == assistant_id), None)
        if built_in is not None:
            return built_in
        text = self._assistant_texts().get(assistant_id)
        try:
            return Assistant.from_dict(json.loads(text)) if text else None
        except (ValueError, InvalidAssistantError):
            return None

    def create_assistant(self, assistant: Assistant) -> Assistant:
        """Store a new assistant; its id is the slug of its name (``-2``, ``-3``… when taken).

        Returns:
            the assistant as stored (id and times set).

        Raises:
            StoreError: the assistant is not valid, its name is taken (built-ins and "Parley"
                included), or the write failed; the sentence says which.
        """
        checked = _valid(assistant).stamped(created=True)
        base, reserved = slug_of(checked.name), {a.id for a in BUILT_INS}
        for number in range(1, 1000):
            candidate = base if number == 1 else f"{base}-{number}"
            if candidate in reserved:
                continue
            stored = replace(checked, id=candidate)
            outcome = self._write_assistant(candidate, name_key(stored.name), _assistant_json(stored), create=True)
            if outcome is None:
                return stored
            if outcome == "name":
                raise _name_taken(stored.name)
        raise StoreError(f"Too many assistants are called like {checked.name!r}; pick another name.")

    def update_assistant(self, assistant: Assistant) -> Assistant:
        """Replace the stored assistant with ``assistant.id`` (its id and creation time kept).

        Returns:
            the assistant as stored.

        Raises:
            StoreError: a built-in, no such assistant, not valid, a name taken, or a failed write.
        """
        if any(a.id == assistant.id for a in BUILT_INS):
            raise StoreError(f"{assistant.name!r} is built in and cannot be changed; duplicate it to make your own.")
        old = self.assistant(assistant.id)
        if old is None:
            raise StoreError(f"There is no assistant {assistant.id!r}; it may have been deleted.")
        stored = replace(_valid(assistant), created=old.created).stamped(created=False)
        outcome = self._write_assistant(stored.id, name_key(stored.name), _assistant_json(stored), create=False)
        if outcome == "name":
            raise _name_taken(stored.name)
        if outcome == "missing":
            raise StoreError(f"There is no assistant {assistant.id!r}; it may have been deleted.")
        return stored

    def delete_assistant(self, assistant_id: str) -> None:
        """Delete a stored assistant (its conversations stay, and go on with the default).

        Raises:
            StoreError: a built-in, no such assistant, or a failed write.
        """
        if any(a.id == assistant_id for a in BUILT_INS):
            raise StoreError("Built-in assistants cannot be deleted.")
        if not self._delete_assistant(assistant_id):
            raise StoreError(f"There is no assistant {assistant_id!r}; it may have been deleted already.")

    def import_assistants(self, data: bytes | str) -> list[Assistant]:
        """Add the assistants of an export file (a JSON list of assistants, or ``{"assistants": [...]}``).

        Every entry is checked first, names included, so a broken file adds nothing.

        Returns:
            the assistants added, with their new ids.

        Raises:
            StoreError: the file is not JSON, an entry is not valid (its position and the reason
                said), two entries or an entry and a stored assistant share a name, or a write failed.
        """
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"This is not an assistants file: it is not JSON ({exc}).") from exc
        entries = parsed.get("assistants") if isinstance(parsed, dict) else parsed
        if not isinstance(entries, list):
            raise StoreError('This is not an assistants file: expected a list of assistants, or {"assistants": [...]}.')
        incoming = []
        for position, entry in enumerate(entries, start=1):
            try:
                incoming.append(_valid(Assistant.from_dict({**entry, "id": ""} if isinstance(entry, dict) else entry)))
            except (InvalidAssistantError, StoreError) as exc:
                raise StoreError(f"Assistant {position} in the file cannot be imported: {exc}") from exc
        taken = {name_key(a.name) for a in self.assistants()}
        keys = [name_key(a.name) for a in incoming]
        clash = next((a.name for a, k in zip(incoming, keys, strict=True) if k in taken or keys.count(k) > 1), None)
        if clash is not None:
            raise StoreError(
                f"An assistant called {clash!r} already exists; rename it in the file. Nothing was imported."
            )
        return [self.create_assistant(a) for a in incoming]

    def preferences(self, owner: str | None = None) -> dict[str, Any]:
        """The settings ``owner`` (by default this store's) chose last (provider, model, system
        prompt…), or ``{}`` (also when what is stored is not a JSON object).

        Raises:
            StoreError: the store cannot be read.
        """
        owner = owner or self.owner
        return preferences_of(self._record_texts("preferences", owner).get(owner))

    def save_preferences(self, values: dict[str, Any], owner: str | None = None) -> None:
        """Keep ``values`` as ``owner``'s (by default this store's) settings, replacing what was there
        (never API keys: the caller leaves them out).

        Raises:
            StoreError: ``values`` is not a JSON object of at most ``MAX_PREFERENCES_BYTES``, or the
                write failed.
        """
        self._save_record_text("preferences", owner or self.owner, preferences_json(values))

    def records(self, kind: RecordKind, key: str | None = None) -> dict[str, dict[str, Any]]:
        """``kind``'s records (every owner's) by key, each a JSON object; only ``key``'s when given
        (then empty when it has none). A record that is not a JSON object is left out.

        Raises:
            StoreError: the store cannot be read.
        """
        found = {}
        for record_key, text in self._record_texts(kind, key).items():
            values = preferences_of(text)
            if values:
                found[record_key] = values
        return found

    def save_record(self, kind: RecordKind, key: str, values: dict[str, Any]) -> None:
        """Store ``values`` as ``kind``'s record ``key``, replacing what was there, in one write.

        Raises:
            StoreError: ``values`` is not a JSON object of at most ``MAX_PREFERENCES_BYTES``, or the
                write failed.
        """
        self._save_record_text(kind, key, preferences_json(values))

    def record_account(self, subject: str, email: str, name: str, when: str) -> None:
        """Remember that ``subject`` signed in, with the e-mail and name the provider gave, at ``when``
        (ISO 8601 UTC): the list of accounts every owner's store shares (``accounts``).

        Raises:
            StoreError: ``subject`` is not a valid owner id (``check_owner``), or the write failed.
        """
        record = {"email": email, "name": name, "last_seen": when}
        self._save_record_text("accounts", check_owner(subject), preferences_json(record))

    def accounts(self) -> list[AccountRecord]:
        """Everyone who has signed in (``record_account``), by e-mail then subject.

        Raises:
            StoreError: the store cannot be read.
        """
        found = []
        for subject, text in self._record_texts("accounts").items():
            values = preferences_of(text)
            fields = [str(values.get(key, "")) for key in ("email", "name", "last_seen")]
            found.append(AccountRecord(subject, *fields))
        return sorted(found, key=lambda a: (a.email.casefold(), a.subject))

    def exists(self, name: str) -> bool:
        """True if a conversation called ``name`` (trimmed) is stored."""
        return self.get(name.strip()) is not None

    def summaries(self, offset: int = 0, limit: int = 50) -> tuple[list[Summary], int]:
        """A page of the conversation list, newest activity first, and how many there are in all.

        Args:
            offset: how many to skip.
            limit: the most to return.
        """
        names = self.names()
        return [summary_of(name, self.get(name) or []) for name in names[offset : offset + limit]], len(names)

    def summary(self, name: str) -> Summary | None:
        """The ``Summary`` of conversation ``name``, or None if there is no such conversation.

        Raises:
            StoreError: the store cannot be read.
        """
        messages = self.get(name)
        return None if messages is None else summary_of(name, messages)

    def search(self, query: str) -> list[str]:
        """The names (newest activity first) whose name or any message contains ``query``, ignoring
        case; a blank query returns every name."""
        needle = query.strip().casefold()
        names = self.names()
        if not needle:
            return names
        found = []
        for name in names:
            if needle in name.casefold() or any(needle in m.content.casefold() for m in self.get(name) or []):
                found.append(name)
        return found

    def import_conversations(self, incoming: Conversations, replace: bool) -> list[str]:
        """Add ``incoming`` conversations.

        Args:
            incoming: ``{name: messages}``, e.g. from ``parse_import``.
            replace: on a name clash, True replaces the saved one; False keeps both, saving the
                imported one as ``"<name> (imported)"``, ``"<name> (imported 2)"``...

        Returns:
            the names the conversations were saved under, in order.

        Raises:
            StoreError: a name is blank, or a write fails.
        """
        cleaned = {normalize_name(name): messages for name, messages in incoming.items()}
        saved_as = []
        for name, messages in cleaned.items():
            target = name
            if not replace and self.exists(name):
                target, n = f"{name} (imported)", 2
                while self.exists(target):
                    target, n = f"{name} (imported {n})", n + 1
            saved_as.append(self.save(target, messages))
        return saved_as

    # ----- attachments (images and audio, by SHA-256; ``model.attachments``) ----------------
    @abstractmethod
    def _put_blob(self, digest: str, data: bytes, mime: str) -> None:
        """Keep ``data`` as attachment ``digest`` (its SHA-256), its time set to now if it exists.

        Raises:
            StoreError: the write failed.
        """

    @abstractmethod
    def _get_blob(self, digest: str) -> Blob | None:
        """Attachment ``digest``, or None.

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def _blobs_before(self, when: float) -> list[str]:
        """The ids of the attachments stored before ``when`` (seconds since 1970).

        Raises:
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def _delete_blobs(self, digests: list[str]) -> None:
        """Remove attachments ``digests`` (missing ones are not an error).

        Raises:
            StoreError: the write failed.
        """

    def _stored_messages(self) -> list[dict[str, Any]]:
        """Every stored message in its stored form (for the attachments they refer to)."""
        return [m.to_dict() for messages in self.load_all().values() for m in messages]

    def _collect_quietly(self) -> None:
        """``collect_attachments`` after a delete; a failure waits for the next delete."""
        with contextlib.suppress(StoreError):
            self.collect_attachments(self.attachment_grace)

    def put_attachment(self, data: bytes, mime: str) -> str:
        """Keep ``data`` (an image or a recording) and return its id, its SHA-256 in hex; the same
        bytes are kept once.

        Raises:
            StoreError: larger than ``MAX_ATTACHMENT_BYTES``, or the write failed.
        """
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise StoreError(f"An attachment may be at most {MAX_ATTACHMENT_BYTES // 2**20} MB.")
        digest = digest_of(data)
        self._put_blob(digest, data, mime)
        return digest

    def attachment(self, digest: str) -> Blob | None:
        """The attachment ``digest`` (SHA-256 in hex), or None when there is none or the id is not one;
        the last ``model.attachments.BLOB_CACHE_BYTES`` read are kept in memory.

        Raises:
            StoreError: the store cannot be read.
        """
        if not valid_digest(digest):
            return None
        blob = self._blob_cache.get(digest)
        if blob is None:
            blob = self._get_blob(digest)
            if blob is not None:
                self._blob_cache.put(digest, blob)
        return blob

    @functools.cached_property
    def _blob_cache(self) -> BlobCache:
        """The attachments read last (a page shows them on every rerun)."""
        return BlobCache()

    def collect_attachments(self, grace: float = GRACE_SECONDS) -> int:
        """Remove the attachments no stored message refers to, older than ``grace`` seconds.

        Returns:
            how many were removed.

        Raises:
            StoreError: the store cannot be read or written.
        """
        old = self._blobs_before(time.time() - grace)
        if not old:
            return 0
        used = referenced(self._stored_messages())
        unused = [digest for digest in old if digest not in used]
        if unused:
            self._delete_blobs(unused)
            self._blob_cache.discard(unused)
        return len(unused)

    def pop_notices(self) -> list[str]:
        """Return and clear sentences for the user about the store (e.g. a file moved aside)."""
        return []

    def list_backups(self) -> list[Path]:
        """The backups of this store, newest first (only the JSON file store keeps backups)."""
        return []

    def restore_backup(self, backup: Path) -> None:
        """Replace the conversations with a backup's.

        Raises:
            StoreError: this store keeps no backups (only the JSON file store does).
        """
        raise StoreError(f"{self.location} keeps no backups here; use your database's own backups.")

    def close(self) -> None:  # noqa: B027 (a no-op unless the backend holds connections)
        """Release connections (backends with a pool)."""


def _valid(assistant: Assistant) -> Assistant:
    """``assistant`` checked, with a name no built-in or the default has.

    Raises:
        StoreError: it is not valid, or its name is a built-in's or "Parley".
    """
    try:
        checked = assistant.checked()
    except InvalidAssistantError as exc:
        raise StoreError(str(exc)) from exc
    reserved = {name_key(a.name) for a in BUILT_INS} | {name_key(DEFAULT_ASSISTANT)}
    if name_key(checked.name) in reserved:
        raise _name_taken(checked.name)
    return checked


def _name_taken(name: str) -> StoreError:
    return StoreError(f"An assistant called {name!r} already exists; pick another name.")


def _assistant_json(assistant: Assistant) -> str:
    """The stored JSON text of ``assistant``."""
    return json.dumps(assistant.to_dict(), ensure_ascii=False, sort_keys=True)
