"""Images and audio kept outside the messages, content-addressed: a message's ``Attachment`` holds
the SHA-256 of its bytes (hex, 64 characters), and the bytes live in the store's attachment space
(``BaseConversationStore.put_attachment``): files in an ``attachments/`` folder beside
conversations.json, a bytea table in PostgreSQL, a key per attachment in Redis. A chat that is not
saved (Simple Chat, ``/v1``) keeps them in memory (``MemoryAttachments``).

An attachment no conversation refers to any more (the last conversation using it was deleted) is
removed by ``collect`` once it is older than ``GRACE_SECONDS``: an image just stored for a message
that is about to be saved is never taken.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: An attachment younger than this is never collected, in seconds (its message may not be saved yet).
GRACE_SECONDS = 600.0
#: A SHA-256 in hex: what attachment ids look like (anything else is refused before it is used as a key).
DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: Largest attachment kept, in bytes (an image is cut to 2048 px first; audio is at most 25 MB).
MAX_ATTACHMENT_BYTES = 25 * 2**20
#: Bytes of attachments a store keeps in memory after reading them (``BlobCache``): a page shows a
#: conversation's thumbnails again on every rerun.
BLOB_CACHE_BYTES = 64 * 2**20
#: File name suffixes of the types kept, for the file store's folder.
SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/flac": ".flac",
}


@dataclass(frozen=True, slots=True)
class Blob:
    """An attachment's bytes and type.

    Attributes:
        data: the bytes.
        mime: the media type, e.g. ``image/png`` or ``audio/wav``.
    """

    data: bytes
    mime: str


class AttachmentReader(Protocol):
    """Where an engine reads an attachment's bytes from."""

    def attachment(self, digest: str) -> Blob | None:
        """The attachment with SHA-256 ``digest``, or None when there is none."""


class AttachmentSink(Protocol):
    """Where a new attachment is kept."""

    def put_attachment(self, data: bytes, mime: str) -> str:
        """Keep ``data``; returns its SHA-256 in hex.

        Raises:
            model.store.StoreError: it could not be kept.
        """


class AttachmentSpace(AttachmentReader, AttachmentSink, Protocol):
    """Where a chat's attachments are kept and read: its store, or ``MemoryAttachments``."""


def digest_of(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex (the attachment's id)."""
    return hashlib.sha256(data).hexdigest()


def valid_digest(digest: str) -> bool:
    """True when ``digest`` is 64 lower-case hex digits."""
    return bool(DIGEST.match(digest))


def referenced(messages: Iterable[Mapping[str, Any]]) -> set[str]:
    """The attachment ids stored messages (in their stored form) refer to: their attachments, their
    tool calls' images, and those of their versions."""
    found: set[str] = set()
    for message in messages:
        parts = list(message.get("attachments") or ())
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                parts += list(call.get("images") or ())
        for attachment in parts:
            if isinstance(attachment, Mapping) and isinstance(attachment.get("sha256"), str):
                found.add(attachment["sha256"])
        for branch in message.get("versions") or ():
            if isinstance(branch, list):
                found |= referenced(m for m in branch if isinstance(m, Mapping))
    return found


class MemoryAttachments:
    """Attachments of a chat that is not saved, in this process's memory (gone with it)."""

    def __init__(self) -> None:
        self._blobs: dict[str, Blob] = {}
        self._lock = threading.Lock()

    def put_attachment(self, data: bytes, mime: str) -> str:
        """Keep ``data``; returns its SHA-256."""
        digest = digest_of(data)
        with self._lock:
            self._blobs[digest] = Blob(data, mime)
        return digest

    def attachment(self, digest: str) -> Blob | None:
        """The attachment ``digest``, or None."""
        with self._lock:
            return self._blobs.get(digest)


class BlobCache:
    """The attachments read last, up to ``max_bytes`` in all, least recently used dropped first.

    Safe because attachments are content-addressed: the bytes under a SHA-256 never change; a
    removed one is dropped with ``discard``.
    """

    def __init__(self, max_bytes: int = BLOB_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[str, Blob] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, digest: str) -> Blob | None:
        """The cached attachment ``digest``, or None."""
        with self._lock:
            blob = self._blobs.get(digest)
            if blob is not None:
                self._blobs.move_to_end(digest)
            return blob

    def put(self, digest: str, blob: Blob) -> None:
        """Keep ``blob`` under ``digest`` (not when it alone is over ``max_bytes``)."""
        if len(blob.data) > self.max_bytes:
            return
        with self._lock:
            if digest in self._blobs:
                return
            self._blobs[digest] = blob
            self._size += len(blob.data)
            while self._size > self.max_bytes:
                _, dropped = self._blobs.popitem(last=False)
                self._size -= len(dropped.data)

    def discard(self, digests: Iterable[str]) -> None:
        """Forget ``digests`` (removed from the store)."""
        with self._lock:
            for digest in digests:
                dropped = self._blobs.pop(digest, None)
                if dropped is not None:
                    self._size -= len(dropped.data)
