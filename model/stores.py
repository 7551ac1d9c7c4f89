"""Open the conversation store that CONVERSATIONS_URL names: a path (``JsonFileStore``, the
default), ``postgresql://...`` (``PostgresStore``) or ``redis://...`` (``RedisStore``)."""

from __future__ import annotations

from pathlib import Path

from model.json_store import JsonFileStore
from model.store import BaseConversationStore, StoreError, mask_url

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(location: str | Path) -> BaseConversationStore:
    """The store at ``location``.

    Args:
        location: a file path (relative paths are the caller's to resolve), or a PostgreSQL or Redis URL.

    Raises:
        StoreError: an unknown URL scheme, or a database that cannot be reached (the sentence names
            the URL with its password masked). Parley never falls back to the file silently.
    """
    text = str(location).strip()
    if text.startswith(POSTGRES_SCHEMES):
        from model.postgres_store import PostgresStore

        return PostgresStore(text)
    if text.startswith(REDIS_SCHEMES):
        from model.redis_store import RedisStore

        return RedisStore(text)
    if "://" in text:
        raise StoreError(
            f"CONVERSATIONS_URL {mask_url(text)} is not a file path, a postgresql:// URL or a redis:// URL."
        )
    return JsonFileStore(Path(text))
