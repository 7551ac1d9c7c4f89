"""``JsonFileStore``: named conversations in one JSON file, written atomically under a file lock.

Format (``model.transfer``): a JSON object mapping each conversation name to a list of
``{"role": "user"|"assistant"|"system", "content": "..."}``; extra keys per message are allowed.

Durability, for every write:
1. a ``filelock`` lock on ``<file>.lock`` is held over the whole read-modify-write;
2. the new content goes to a temp file in the same folder, flushed and fsynced;
3. ``os.replace`` puts it over the file; 4. the folder is fsynced.
Temp files of writers killed between 2 and 3 are removed by the next write, under the lock.

A file that cannot be read as that format is never overwritten: it is moved aside as
``<file>.corrupt-<UTC timestamp>``, the conversations that can still be read from it are kept,
and a notice says where the old file went. Before each destructive write (delete, overwrite,
rename) a copy is kept as ``<file>.bak-<UTC timestamp>``; the newest ``backups`` are kept.

Preferences live beside the file, in ``preferences.json``: ``{owner: {setting: value}}``, written
the same way under their own lock. Images and recordings live in ``attachments/`` beside it, one
file per attachment named by its SHA-256 and type (``<sha256>.png``), written atomically; the file's
modification time is when it was last stored.

With accounts, each owner but ``LOCAL_OWNER`` has a folder of their own,
``<file stem>.owners/<owner_key(owner)>/``, holding their conversations file (same name and format)
and their ``attachments/``; ``owner.txt`` there names the owner. ``preferences.json``,
``assistants.json``, ``accounts.json`` (who signed in: ``{subject: {email, name, last_seen}}``),
``api_keys.json`` and ``api_key_uses.json`` (``model.api_keys``: by key id) stay beside the main file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from model.attachments import SUFFIXES, Blob
from model.message import Message
from model.store import (
    LOCAL_OWNER,
    BaseConversationStore,
    Conversations,
    RecordKind,
    StoreError,
    Summary,
    last_activity,
    normalize_name,
    owner_key,
    summary_of,
)
from model.transfer import entry_bytes, file_pieces, parse_conversations

T = TypeVar("T")

_UNCHANGED = "The file was not changed; your conversation is still here, so you can try again."


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` for no file, or one that is not a JSON object.

    Raises:
        StoreError: the file cannot be read.
    """
    try:
        found = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}
    except OSError as exc:
        raise StoreError(f"Could not read {path}: {exc.strerror or exc}.") from exc
    return found if isinstance(found, dict) else {}


def _atomic_write(path: Path, chunks: list[bytes]) -> None:
    """Replace ``path`` with ``chunks`` atomically: a temp file in the same folder, fsynced, then
    ``os.replace``, then the folder fsynced (the caller holds the file's lock).

    Raises:
        StoreError: the write failed; ``path`` is unchanged.
    """
    folder = path.parent
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as tmp:
            tmp.writelines(chunks)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StoreError(f"Could not save to {path}: {exc.strerror or exc}. {_UNCHANGED}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What the file held at one (inode, mtime in ns, size in bytes)."""

    key: tuple[int, int, int] | None
    conversations: Conversations


def _stamp() -> str:
    """Return a UTC timestamp safe for a file name, with microseconds: ``20261121T193000.123456Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class JsonFileStore(BaseConversationStore):
    """Saved conversations in one JSON file; safe across threads, browser tabs and processes.

    Args:
        path: the conversations.json file; its folder must exist or be creatable.
        lock_timeout: seconds to wait for another writer's lock before giving up.
        backups: how many ``.bak-`` copies to keep (0 keeps none).
        owner: whose conversations ``path`` holds (``owned_by`` sets it).
        shared: the folder of ``preferences.json`` and ``assistants.json`` (default: ``path``'s).

    Reads are cached by the file's (inode, mtime, size), so a Streamlit rerun with no change
    does not parse the file again.
    """

    def __init__(
        self,
        path: Path | str,
        lock_timeout: float = 10.0,
        backups: int = 5,
        owner: str = LOCAL_OWNER,
        shared: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.owner = owner
        self._shared = shared or self.path.parent
        self.location = str(self.path)
        self.lock_timeout = lock_timeout
        self.backups = backups
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)
        self._cache = _Snapshot(None, {})
        self._cache_guard = threading.Lock()
        self._notices: list[str] = []
        # name → (the message list, its file entry as bytes): a save re-serialises only the lists
        # that changed. The store never changes a list in place (it replaces it); Messages are frozen.
        self._fragments: dict[str, tuple[list[Message], bytes]] = {}

    def _scoped(self, owner: str) -> JsonFileStore:
        """``owner``'s store: their folder under ``<stem>.owners/`` (made, with ``owner.txt``, on first use).

        Raises:
            StoreError: the folder cannot be made.
        """
        if owner == LOCAL_OWNER:
            return JsonFileStore(self._shared / self.path.name, self.lock_timeout, self.backups)
        folder = self._shared / f"{self.path.stem}.owners" / owner_key(owner)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "owner.txt").exists():
                _atomic_write(folder / "owner.txt", [owner.encode("utf-8")])
        except OSError as exc:
            raise StoreError(f"Could not make {folder}: {exc.strerror or exc}.") from exc
        return JsonFileStore(folder / self.path.name, self.lock_timeout, self.backups, owner, self._shared)

    # ----- reading -------------------------------------------------------------------------
    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_file(self) -> tuple[Conversations, list[str] | None]:
        """Read the file as it is now: (conversations, problems or None when it is sound)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, None
        except UnicodeDecodeError:
            return {}, ["the file is not UTF-8 text"]
        except OSError as exc:
            raise StoreError(f"Could not read {self.path}: {exc.strerror or exc}.") from exc
        if not text.strip():
            return {}, ["the file is empty"]
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            return {}, [f"the file is not valid JSON ({exc.msg} at line {exc.lineno})"]
        conversations, problems = parse_conversations(raw)
        return conversations, problems or None

    def _read_locked(self) -> Conversations:
        """Read under the write lock, moving a bad file aside; returns what could be kept."""
        conversations, problems = self._read_file()
        if problems is not None:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{_stamp()}")
            try:
                os.replace(self.path, aside)
            except OSError as exc:
                raise StoreError(
                    f"{self.path} cannot be read ({problems[0]}) and could not be moved aside: "
                    f"{exc.strerror or exc}. Nothing was changed."
                ) from exc
            kept = (
                f" {len(conversations)} conversation(s) could be read from it and were kept." if conversations else ""
            )
            self._notices.append(
                f"The saved conversations file could not be read ({'; '.join(problems)}). "
                f"It was moved aside to {aside} and not changed.{kept}"
            )
            if conversations:
                self._write(conversations)
        return conversations

    def load_all(self) -> Conversations:
        """Return every saved conversation as ``{name: [Message, ...]}`` in file order.

        The result is cached by the file's identity, mtime and size; treat it as read-only.

        Raises:
            StoreError: if the file cannot be read, or is bad and cannot be moved aside.
        """
        key = self._stat_key()
        with self._cache_guard:
            if key == self._cache.key:
                return self._cache.conversations
        conversations, problems = self._read_file()
        if problems is not None:
            conversations = self._locked(self._read_locked)
            key = self._stat_key()
        with self._cache_guard:
            self._cache = _Snapshot(key, conversations)
        return conversations

    def names(self) -> list[str]:
        """Return the conversation names, newest activity first (by message ``timestamp``).

        Conversations without timestamps keep their file order, after those with timestamps.
        """
        conversations = self.load_all()
        return sorted(conversations, key=lambda n: last_activity(conversations[n]), reverse=True)

    def get(self, name: str) -> list[Message] | None:
        """Return a copy of the messages of ``name``, or None if there is no such conversation."""
        messages = self.load_all().get(name)
        return None if messages is None else list(messages)

    def search(self, query: str) -> list[str]:
        """Return the names (newest activity first) whose name or any message contains ``query``.

        Matching ignores case; an empty or blank query returns every name.
        """
        needle = query.strip().casefold()
        conversations = self.load_all()
        return [
            name
            for name in self.names()
            if not needle
            or needle in name.casefold()
            or any(needle in m.content.casefold() for m in conversations[name])
        ]

    def pop_notices(self) -> list[str]:
        """Return and clear the sentences for the user about files that were moved aside."""
        notices, self._notices = self._notices, []
        return notices

    def list_backups(self) -> list[Path]:
        """Return the backup files of this store, newest first."""
        return sorted(self.path.parent.glob(f"{self.path.name}.bak-*"), reverse=True)

    # ----- writing -------------------------------------------------------------------------
    def _locked(self, action: Callable[[], Conversations]) -> Conversations:
        try:
            with self._lock:
                return action()
        except Timeout as exc:
            raise StoreError(
                f"The conversations file is busy (another Parley window is writing it); "
                f"gave up after {self.lock_timeout:g} s. Please try again."
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"Could not save to {self.path}: {exc.strerror or exc} (the lock file {self._lock.lock_file} "
                f"cannot be created). {_UNCHANGED}"
            ) from exc

    def _serialise(self, conversations: Conversations) -> list[bytes]:
        """The file's bytes in pieces, reusing the entry of every conversation list that did not change."""
        fragments: dict[str, tuple[list[Message], bytes]] = {}
        for name, messages in conversations.items():
            cached = self._fragments.get(name)
            if cached is None or cached[0] is not messages:
                cached = (messages, entry_bytes(name, messages))
            fragments[name] = cached
        self._fragments = fragments
        return file_pieces([entry for _, entry in fragments.values()])

    def _remove_orphans(self) -> int:
        """Delete temp files left by writers that died mid-save (caller holds the lock).

        Every temp file is made under the lock and replaced or removed before it is released, so
        one that exists while this process holds the lock belongs to a writer that was killed
        (SIGKILL, power loss) between ``mkstemp`` and ``os.replace``.

        Returns:
            how many were removed; one that cannot be removed is left for the next write.
        """
        removed = 0
        for orphan in self.path.parent.glob(f".{glob_escape(self.path.name)}.*.tmp"):
            try:
                orphan.unlink()
                removed += 1
            except OSError:
                continue
        return removed

    def _write(self, conversations: Conversations) -> None:
        """Atomically replace the file with ``conversations`` (caller holds the lock)."""
        self._remove_orphans()
        _atomic_write(self.path, self._serialise(conversations))

    def _backup(self) -> None:
        """Copy the current file to ``.bak-<timestamp>`` and drop all but the newest N."""
        if self.backups <= 0 or not self.path.exists():
            return
        try:
            shutil.copy2(self.path, self.path.with_name(f"{self.path.name}.bak-{_stamp()}"))
            for old in self.list_backups()[self.backups :]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Could not back up {self.path} before changing it: {exc.strerror or exc}. Nothing was changed."
            ) from exc

    def _modify(self, change: Callable[[Conversations], bool]) -> Conversations:
        """Run ``change`` on a fresh copy under the lock; it returns True to back up first."""

        def action() -> Conversations:
            # Under the lock no one else writes, so a cache whose (inode, mtime, size) still
            # matches the file is what the file holds: no need to parse it again.
            key = self._stat_key()
            with self._cache_guard:
                cached = self._cache.conversations if key is not None and key == self._cache.key else None
            conversations = dict(cached if cached is not None else self._read_locked())
            if change(conversations):
                self._backup()
            self._write(conversations)
            return conversations

        result = self._locked(action)
        with self._cache_guard:
            self._cache = _Snapshot(self._stat_key(), result)
        return result

    def save(self, name: str, messages: list[Message], backup: bool = True) -> str:
        """Save ``messages`` under ``name`` (trimmed), replacing what that name held.

        Replacing an existing conversation makes a backup first unless the new messages only
        extend the stored ones (the auto-save of a new turn) or ``backup`` is False.

        Returns:
            the trimmed name it was saved under.

        Raises:
            StoreError: on an empty name, a lock timeout, or a failed write (file unchanged).
        """
        name = normalize_name(name)

        def change(conversations: Conversations) -> bool:
            old = conversations.get(name)
            conversations[name] = list(messages)
            return backup and old is not None and old != list(messages[: len(old)])

        self._modify(change)
        return name

    def append(self, name: str, messages: list[Message]) -> int:
        """Add ``messages`` after what ``name`` holds in the file now (under the lock), creating it if needed.

        Returns:
            the number of messages the conversation holds afterwards.

        Raises:
            StoreError: on an empty name, a lock timeout, or a failed write (file unchanged).
        """
        name = normalize_name(name)
        count = 0

        def change(conversations: Conversations) -> bool:
            nonlocal count
            conversations[name] = [*conversations.get(name, []), *messages]
            count = len(conversations[name])
            return False

        self._modify(change)
        return count

    def exists(self, name: str) -> bool:
        """True if a conversation called ``name`` (trimmed) is in the file."""
        return name.strip() in self.load_all()

    def summaries(self, offset: int = 0, limit: int = 50) -> tuple[list[Summary], int]:
        """A page of the conversation list, newest activity first, and how many there are in all."""
        conversations = self.load_all()
        names = self.names()
        return [summary_of(n, conversations[n]) for n in names[offset : offset + limit]], len(names)

    def delete(self, name: str) -> None:
        """Delete the conversation ``name`` after a backup; a missing name is not an error.

        Raises:
            StoreError: on a lock timeout or a failed write (file unchanged).
        """

        def change(conversations: Conversations) -> bool:
            return conversations.pop(name, None) is not None

        self._modify(change)
        self._collect_quietly()

    def import_conversations(self, incoming: Conversations, replace: bool) -> list[str]:
        """Add ``incoming`` conversations in one write.

        Args:
            incoming: ``{name: messages}``, e.g. from ``parse_import``.
            replace: on a name clash, True replaces the saved one (after a backup); False keeps
                both, saving the imported one as ``"<name> (imported)"``, ``"<name> (imported 2)"``...

        Returns:
            the names the conversations were saved under, in order.

        Raises:
            StoreError: a name is blank, or the write fails (the file is unchanged).
        """
        cleaned = {normalize_name(name): messages for name, messages in incoming.items()}
        saved_as: list[str] = []

        def change(conversations: Conversations) -> bool:
            clash = False
            for name, messages in cleaned.items():
                target = name
                if name in conversations:
                    clash = True
                    if not replace:
                        target, n = f"{name} (imported)", 2
                        while target in conversations:
                            target, n = f"{name} (imported {n})", n + 1
                conversations[target] = list(messages)
                saved_as.append(target)
            return clash and replace

        self._modify(change)
        return saved_as

    def restore_backup(self, backup: Path) -> None:
        """Replace the saved conversations with those of ``backup`` (one of ``list_backups()``).

        The current file is backed up first, so a restore can itself be undone.

        Raises:
            StoreError: the backup is not one of this store's, cannot be read, or the write fails.
        """
        backup = Path(backup)
        if backup not in self.list_backups():
            raise StoreError(f"{backup.name} is not a backup of {self.path.name}.")
        try:
            raw = json.loads(backup.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"The backup {backup.name} cannot be read: {exc}. Nothing was changed.") from exc
        restored, problems = parse_conversations(raw)
        if problems:
            raise StoreError(f"The backup {backup.name} is damaged ({problems[0]}). Nothing was changed.")

        def change(conversations: Conversations) -> bool:
            conversations.clear()
            conversations.update(restored)
            return True

        self._modify(change)

    def rename(self, old: str, new: str, replace: bool = False) -> str:
        """Rename conversation ``old`` to ``new`` (trimmed) after a backup, in one write under the lock
        (``BaseConversationStore.rename``).

        Raises:
            StoreError: ``new`` is empty (or taken, without ``replace``), ``old`` does not exist, or
                the write fails.
        """
        new = normalize_name(new)

        def change(conversations: Conversations) -> bool:
            if old not in conversations:
                raise StoreError(f"There is no saved conversation called {old!r}.")
            if new != old and new in conversations and not replace:
                raise StoreError(f"A conversation called {new!r} already exists; pick another name.")
            conversations[new] = conversations.pop(old)
            return True

        self._modify(change)
        return new

    # ----- preferences and accounts -----------------------------------------------------------
    def record_path(self, kind: RecordKind) -> Path:
        """``<kind>.json`` (``preferences.json``, ``accounts.json``, ``api_keys.json``…) in the main
        conversations file's folder: ``{key: object}``."""
        return self._shared / f"{kind}.json"

    def _record_texts(self, kind: RecordKind, key: str | None = None) -> dict[str, str | bytes]:
        found = _json_object(self.record_path(kind))
        return {
            k: json.dumps(v, ensure_ascii=False)
            for k, v in found.items()
            if isinstance(v, dict) and (key is None or k == key)
        }

    def _save_record_text(self, kind: RecordKind, key: str, text: str) -> None:
        """Write record ``key`` into ``<kind>.json`` (atomic, under its lock)."""
        path = self.record_path(kind)
        try:
            with FileLock(str(path) + ".lock", timeout=self.lock_timeout):
                everyone = _json_object(path)
                everyone[key] = json.loads(text)
                text = json.dumps(everyone, ensure_ascii=False, sort_keys=True, indent=1)
                _atomic_write(path, [text.encode("utf-8")])
        except Timeout as exc:
            raise StoreError(f"{path} is locked by another writer; try again.") from exc

    # ----- assistants -------------------------------------------------------------------------
    @property
    def assistants_path(self) -> Path:
        """``assistants.json`` in the main conversations file's folder: ``{id: assistant}``."""
        return self._shared / "assistants.json"

    def _all_assistants(self) -> dict[str, Any]:
        """Every stored assistant by id; ``{}`` for no file or one that is not a JSON object.

        Raises:
            StoreError: the file cannot be read.
        """
        return _json_object(self.assistants_path)

    def _assistant_texts(self) -> dict[str, str | bytes]:
        return {k: json.dumps(v, ensure_ascii=False) for k, v in self._all_assistants().items() if isinstance(v, dict)}

    def _change_assistants(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to every assistant by id and write the file (atomic, under its lock).

        Raises:
            StoreError: the lock is held too long, or the write failed.
        """
        try:
            with FileLock(str(self.assistants_path) + ".lock", timeout=self.lock_timeout):
                everyone = self._all_assistants()
                outcome = change(everyone)
                text = json.dumps(everyone, ensure_ascii=False, sort_keys=True, indent=1)
                _atomic_write(self.assistants_path, [text.encode("utf-8")])
                return outcome
        except Timeout as exc:
            raise StoreError(f"{self.assistants_path} is locked by another writer; try again.") from exc
        except OSError as exc:
            raise StoreError(f"Could not write {self.assistants_path}: {exc.strerror or exc}.") from exc

    def _write_assistant(self, assistant_id: str, key: str, text: str, create: bool) -> str | None:
        def change(everyone: dict[str, Any]) -> str | None:
            if create and assistant_id in everyone:
                return "id"
            if not create and assistant_id not in everyone:
                return "missing"
            others = (v.get("name", "") for k, v in everyone.items() if k != assistant_id and isinstance(v, dict))
            if any(isinstance(n, str) and n.strip().casefold() == key for n in others):
                return "name"
            everyone[assistant_id] = json.loads(text)
            return None

        return self._change_assistants(change)

    def _delete_assistant(self, assistant_id: str) -> bool:
        return self._change_assistants(lambda everyone: everyone.pop(assistant_id, None) is not None)

    # ----- attachments ------------------------------------------------------------------------
    @property
    def attachments_path(self) -> Path:
        """The ``attachments/`` folder beside the conversations file."""
        return self.path.with_name("attachments")

    def _blob_files(self, digest: str = "*") -> list[Path]:
        folder = self.attachments_path
        return [p for p in folder.glob(f"{digest}.*") if not p.name.startswith(".")] if folder.is_dir() else []

    def _put_blob(self, digest: str, data: bytes, mime: str) -> None:
        path = self.attachments_path / f"{digest}{SUFFIXES.get(mime, '.bin')}"
        try:
            if path.exists():
                os.utime(path)  # stored again: young again, so it is not collected
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, [data])
        except OSError as exc:
            raise StoreError(f"Could not write {path}: {exc.strerror or exc}.") from exc

    def _get_blob(self, digest: str) -> Blob | None:
        mimes = {suffix: mime for mime, suffix in reversed(SUFFIXES.items())}
        for path in self._blob_files(digest):
            try:
                return Blob(path.read_bytes(), mimes.get(path.suffix, "application/octet-stream"))
            except FileNotFoundError:
                continue  # collected meanwhile
            except OSError as exc:
                raise StoreError(f"Could not read {path}: {exc.strerror or exc}.") from exc
        return None

    def _blobs_before(self, when: float) -> list[str]:
        old = []
        for path in self._blob_files():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < when:
                    old.append(path.name.split(".", 1)[0])
        return old

    def _delete_blobs(self, digests: list[str]) -> None:
        for digest in digests:
            for path in self._blob_files(digest):
                path.unlink(missing_ok=True)
