"""``PostgresStore``: conversations in PostgreSQL (CONVERSATIONS_URL=postgresql://...), through psycopg 3 and its pool.

Tables, created at start if missing (under an advisory lock, so two instances starting at once do
not race): ``parley_conversations`` (one row per conversation: its owner, its name, unique per
owner, and its newest message time; tables made before owners existed gain the column, every row
``LOCAL_OWNER``'s), ``parley_messages`` (one row per message: its conversation, its position, the
message as JSONB in the conversations.json form), ``parley_preferences`` (one row per owner: the
settings as JSON text, which keeps a NUL character escaped), ``parley_accounts`` (who signed in:
subject, and their e-mail, name and last sign-in as JSON text), ``parley_api_keys`` and
``parley_api_key_uses`` (per-person API keys by id, and when each was last used, as JSON text: see
``model.api_keys``), and ``parley_attachments`` (images
and recordings: owner and SHA-256, the key; type, bytes as bytea, and when last stored, seconds
since 1970). Every query names the store's owner, so one owner's rows are never read or written for
another. Every write is one
transaction. ``append`` locks the conversation's row (``INSERT ... ON CONFLICT DO UPDATE``) before
it numbers the new messages, so concurrent appends to one conversation queue instead of
overwriting each other.

jsonb cannot hold the character U+0000 (a file attached to a message may contain it), so every
string is stored with ``NUL_ESCAPE`` standing in for it (``_encode``/``_decode``): what comes back
is what was saved.

A connection that broke (the server restarted) is replaced by the pool; an operation that fails
that way is tried again (``BaseConversationStore._retrying``) before the user is told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from model.attachments import Blob
from model.message import InvalidMessageError, Message
from model.store import (
    BaseConversationStore,
    Conversations,
    StoreError,
    Summary,
    last_activity,
    mask_url,
    normalize_name,
)

if TYPE_CHECKING:
    from model.store import RecordKind

T = TypeVar("T")
#: Seconds to wait for a connection (at start, and from the pool).
CONNECT_TIMEOUT = 5.0
#: Arbitrary key of the advisory lock held while the tables are created.
SCHEMA_LOCK = 727_001

SCHEMA = """
CREATE TABLE IF NOT EXISTS parley_conversations (
    id bigserial PRIMARY KEY,
    owner text NOT NULL DEFAULT 'local',
    name text NOT NULL,
    last_activity text NOT NULL DEFAULT ''
);
ALTER TABLE parley_conversations ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT 'local';
ALTER TABLE parley_conversations DROP CONSTRAINT IF EXISTS parley_conversations_name_key;
DROP INDEX IF EXISTS parley_conversations_by_activity;
CREATE UNIQUE INDEX IF NOT EXISTS parley_conversations_owner_name ON parley_conversations (owner, name);
CREATE INDEX IF NOT EXISTS parley_conversations_by_owner_activity
    ON parley_conversations (owner, last_activity DESC, id);
CREATE TABLE IF NOT EXISTS parley_messages (
    conversation_id bigint NOT NULL REFERENCES parley_conversations (id) ON DELETE CASCADE,
    position integer NOT NULL,
    message jsonb NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS parley_preferences (
    owner text PRIMARY KEY,
    preferences text NOT NULL
);
CREATE TABLE IF NOT EXISTS parley_attachments (
    owner text NOT NULL DEFAULT 'local',
    sha256 text NOT NULL,
    mime text NOT NULL,
    data bytea NOT NULL,
    stored double precision NOT NULL,
    CONSTRAINT parley_attachments_owner_pkey PRIMARY KEY (owner, sha256)
);
ALTER TABLE parley_attachments ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT 'local';
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'parley_attachments_owner_pkey') THEN
        ALTER TABLE parley_attachments DROP CONSTRAINT IF EXISTS parley_attachments_pkey;
        ALTER TABLE parley_attachments ADD CONSTRAINT parley_attachments_owner_pkey PRIMARY KEY (owner, sha256);
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS parley_accounts (
    subject text PRIMARY KEY,
    account text NOT NULL
);
CREATE TABLE IF NOT EXISTS parley_api_keys (
    id text PRIMARY KEY,
    api_key text NOT NULL
);
CREATE TABLE IF NOT EXISTS parley_api_key_uses (
    id text PRIMARY KEY,
    api_key_use text NOT NULL
);
CREATE TABLE IF NOT EXISTS parley_assistants (
    id text PRIMARY KEY,
    name_key text NOT NULL UNIQUE,
    assistant text NOT NULL
);
"""


#: Each kind of record's table, key column and value column (``BaseConversationStore._record_texts``).
RECORD_TABLES: dict[str, tuple[str, str, str]] = {
    "preferences": ("parley_preferences", "owner", "preferences"),
    "accounts": ("parley_accounts", "subject", "account"),
    "api_keys": ("parley_api_keys", "id", "api_key"),
    "api_key_uses": ("parley_api_key_uses", "id", "api_key_use"),
}


def open_pool(url: str, size: int, name: str) -> ConnectionPool:
    """An open psycopg pool of at most ``size`` connections to ``url``, each checked before use (a
    connection broken by a server restart is replaced), waiting CONNECT_TIMEOUT seconds at most.

    Raises:
        PoolTimeout: no connection could be made within CONNECT_TIMEOUT seconds.
    """
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        timeout=CONNECT_TIMEOUT,
        kwargs={"connect_timeout": int(CONNECT_TIMEOUT)},
        check=ConnectionPool.check_connection,
        open=False,
        name=name,
    )
    pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    return pool


class PostgresStore(BaseConversationStore):
    """The conversation store in PostgreSQL.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/database``.
        pool_size: most connections held open.

    Raises:
        StoreError: the server cannot be reached within CONNECT_TIMEOUT seconds, the URL is
            malformed, or the tables cannot be created; the sentence names the URL, password masked.
    """

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.location = mask_url(url)
        try:
            # One direct connection first: its error says why (refused, unknown host, bad password),
            # where the pool would only say that it timed out.
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT)).close()
            self._pool = open_pool(url, pool_size, "parley")
        except (PoolTimeout, psycopg.Error) as exc:
            raise StoreError(
                f"Could not connect to the PostgreSQL database at {self.location}: {_reason(exc)}. "
                "Check CONVERSATIONS_URL and that the server is running; nothing was saved elsewhere."
            ) from exc
        self._run(self._create_schema)

    @staticmethod
    def _create_schema(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(SCHEMA)

    def close(self) -> None:
        """Close the pool's connections (shared with every ``owned_by`` store made from this one)."""
        self._pool.close()

    def _scoped(self, owner: str) -> PostgresStore:
        return self._sibling(owner)

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` in one transaction, again on a fresh connection if the connection broke.

        Raises:
            StoreError: the database stayed unreachable.
        """

        def attempt() -> T:
            with self._pool.connection() as conn:
                return work(conn)

        return self._retrying(
            attempt,
            (psycopg.OperationalError, PoolTimeout),
            lambda exc: (
                f"Could not reach the PostgreSQL database at {self.location}: {_reason(exc)}. "
                "Your conversation is still here; try again."
            ),
        )

    # ----- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The conversation names, newest activity first (creation order among equals)."""
        query = "SELECT name FROM parley_conversations WHERE owner = %s ORDER BY last_activity DESC, id"
        rows = self._run(lambda c: c.execute(query, (self.owner,)).fetchall())
        return [row[0] for row in rows]

    def get(self, name: str) -> list[Message] | None:
        """The messages of ``name`` in position order, or None if there is no such conversation."""

        def work(conn: psycopg.Connection) -> list[Message] | None:
            found = conn.execute(
                "SELECT id FROM parley_conversations WHERE owner = %s AND name = %s", (self.owner, name)
            ).fetchone()
            if found is None:
                return None
            rows = conn.execute(
                "SELECT message FROM parley_messages WHERE conversation_id = %s ORDER BY position", (found[0],)
            ).fetchall()
            return [_message(row[0]) for row in rows]

        return self._run(work)

    def exists(self, name: str) -> bool:
        """True if a conversation called ``name`` (trimmed) is stored."""
        found = self._run(
            lambda c: c.execute(
                "SELECT 1 FROM parley_conversations WHERE owner = %s AND name = %s", (self.owner, name.strip())
            ).fetchone()
        )
        return found is not None

    def load_all(self) -> Conversations:
        """Every conversation, in creation order, with its messages."""

        def work(conn: psycopg.Connection) -> Conversations:
            query = "SELECT name FROM parley_conversations WHERE owner = %s ORDER BY id"
            out: Conversations = {row[0]: [] for row in conn.execute(query, (self.owner,))}
            rows = conn.execute(
                "SELECT c.name, m.message FROM parley_messages m JOIN parley_conversations c "
                "ON c.id = m.conversation_id WHERE c.owner = %s ORDER BY c.id, m.position",
                (self.owner,),
            )
            for name, message in rows:
                out[name].append(_message(message))
            return out

        return self._run(work)

    def summaries(self, offset: int = 0, limit: int = 50) -> tuple[list[Summary], int]:
        """A page of the conversation list (one query), newest activity first, and the total."""

        def work(conn: psycopg.Connection) -> tuple[list[Summary], int]:
            total = conn.execute("SELECT count(*) FROM parley_conversations WHERE owner = %s", (self.owner,)).fetchone()
            rows = conn.execute(
                "SELECT c.name, (SELECT count(*) FROM parley_messages m WHERE m.conversation_id = c.id), "
                "c.last_activity, (SELECT m.message->>'knowledge_base' FROM parley_messages m "
                "WHERE m.conversation_id = c.id AND m.message ? 'knowledge_base' ORDER BY m.position LIMIT 1) "
                "FROM parley_conversations c WHERE c.owner = %s ORDER BY c.last_activity DESC, c.id OFFSET %s LIMIT %s",
                (self.owner, offset, limit),
            ).fetchall()
            page = [Summary(r[0], r[1], r[2], _unescape(r[3]) if r[3] is not None else None) for r in rows]
            return page, total[0] if total else 0

        return self._run(work)

    def search(self, query: str) -> list[str]:
        """Names whose name or any message's content contains ``query`` (ILIKE), newest first."""
        needle = query.replace("\x00", "").strip()
        if not needle:
            return self.names()
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._run(
            lambda c: c.execute(
                "SELECT c.name FROM parley_conversations c WHERE c.owner = %s AND (c.name ILIKE %s OR EXISTS ("
                "SELECT 1 FROM parley_messages m WHERE m.conversation_id = c.id AND m.message->>'content' ILIKE %s)) "
                "ORDER BY c.last_activity DESC, c.id",
                (self.owner, pattern, pattern),
            ).fetchall()
        )
        return [row[0] for row in rows]

    # ----- writing -------------------------------------------------------------------------
    def save(self, name: str, messages: list[Message], backup: bool = True) -> str:
        """Replace what ``name`` holds with ``messages`` (one transaction); this store keeps no backups."""
        name = normalize_name(name)

        def work(conn: psycopg.Connection) -> None:
            conversation = _lock_conversation(conn, self.owner, name)
            conn.execute("DELETE FROM parley_messages WHERE conversation_id = %s", (conversation,))
            _insert(conn, conversation, 0, messages)
            conn.execute(
                "UPDATE parley_conversations SET last_activity = %s WHERE id = %s",
                (last_activity(messages), conversation),
            )

        self._run(work)
        return name

    def append(self, name: str, messages: list[Message]) -> int:
        """Add ``messages`` after the stored ones; concurrent appends to ``name`` queue on its row lock."""
        name = normalize_name(name)

        def work(conn: psycopg.Connection) -> int:
            conversation = _lock_conversation(conn, self.owner, name)
            row = conn.execute(
                "SELECT count(*) FROM parley_messages WHERE conversation_id = %s", (conversation,)
            ).fetchone()
            count = row[0] if row else 0
            _insert(conn, conversation, count, messages)
            conn.execute(
                "UPDATE parley_conversations SET last_activity = GREATEST(last_activity, %s) WHERE id = %s",
                (last_activity(messages), conversation),
            )
            return count + len(messages)

        return self._run(work)

    def delete(self, name: str) -> None:
        """Delete ``name`` and its messages, then the attachments nothing uses; a missing name is not
        an error."""
        self._run(
            lambda c: c.execute("DELETE FROM parley_conversations WHERE owner = %s AND name = %s", (self.owner, name))
        )
        self._collect_quietly()

    def rename(self, old: str, new: str, replace: bool = False) -> str:
        """Rename ``old`` to ``new`` (trimmed) in one transaction; with ``replace`` the conversation
        called ``new`` is deleted in it first (rolled back with the rest if ``old`` is missing)."""
        new = normalize_name(new)

        def work(conn: psycopg.Connection) -> None:
            where = "WHERE owner = %s AND name = %s"
            if new != old and conn.execute(f"SELECT 1 FROM parley_conversations {where}", (self.owner, new)).fetchone():
                if not replace:
                    raise StoreError(f"A conversation called {new!r} already exists; pick another name.")
                conn.execute(f"DELETE FROM parley_conversations {where}", (self.owner, new))
            updated = conn.execute(f"UPDATE parley_conversations SET name = %s {where}", (new, self.owner, old))
            if updated.rowcount == 0:
                raise StoreError(f"There is no saved conversation called {old!r}.")

        try:
            self._run(work)
        except psycopg.errors.UniqueViolation as exc:  # taken between the check and the update
            raise StoreError(f"A conversation called {new!r} already exists; pick another name.") from exc
        return new

    # ----- preferences and accounts -----------------------------------------------------------
    def _record_texts(self, kind: RecordKind, key: str | None = None) -> dict[str, str | bytes]:
        table, key_column, value_column = RECORD_TABLES[kind]
        query = f"SELECT {key_column}, {value_column} FROM {table}"  # names from RECORD_TABLES, not input
        if key is None:
            rows = self._run(lambda c: c.execute(query).fetchall())
        else:
            rows = self._run(lambda c: c.execute(f"{query} WHERE {key_column} = %s", (key,)).fetchall())
        return {str(row[0]): row[1] for row in rows}

    def _save_record_text(self, kind: RecordKind, key: str, text: str) -> None:
        """One upsert of ``key``'s row in ``kind``'s table."""
        table, key_column, value_column = RECORD_TABLES[kind]
        self._run(
            lambda c: c.execute(
                f"INSERT INTO {table} ({key_column}, {value_column}) VALUES (%s, %s) "
                f"ON CONFLICT ({key_column}) DO UPDATE SET {value_column} = EXCLUDED.{value_column}",
                (key, text),
            )
        )

    # ----- assistants -------------------------------------------------------------------------
    def _assistant_texts(self) -> dict[str, str | bytes]:
        rows = self._run(lambda c: c.execute("SELECT id, assistant FROM parley_assistants").fetchall())
        return {str(row[0]): row[1] for row in rows}

    def _write_assistant(self, assistant_id: str, key: str, text: str, create: bool) -> str | None:
        """One INSERT (create) or UPDATE; the table's UNIQUE name key keeps names apart under races."""

        def work(conn: psycopg.Connection[Any]) -> str | None:
            if create:
                inserted = conn.execute(
                    "INSERT INTO parley_assistants (id, name_key, assistant) VALUES (%s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    (assistant_id, key, text),
                )
                return None if inserted.rowcount else "id"
            updated = conn.execute(
                "UPDATE parley_assistants SET name_key = %s, assistant = %s WHERE id = %s", (key, text, assistant_id)
            )
            return None if updated.rowcount else "missing"

        try:
            return self._run(work)
        except psycopg.errors.UniqueViolation:  # another assistant has the name
            return "name"

    def _delete_assistant(self, assistant_id: str) -> bool:
        deleted = self._run(lambda c: c.execute("DELETE FROM parley_assistants WHERE id = %s", (assistant_id,)))
        return bool(deleted.rowcount)

    # ----- attachments ------------------------------------------------------------------------
    def _put_blob(self, digest: str, data: bytes, mime: str) -> None:
        self._run(
            lambda c: c.execute(
                "INSERT INTO parley_attachments (owner, sha256, mime, data, stored) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (owner, sha256) DO UPDATE SET stored = EXCLUDED.stored",
                (self.owner, digest, mime, data, time.time()),
            )
        )

    def _get_blob(self, digest: str) -> Blob | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT data, mime FROM parley_attachments WHERE owner = %s AND sha256 = %s", (self.owner, digest)
            ).fetchone()
        )
        return Blob(bytes(row[0]), row[1]) if row else None

    def _blobs_before(self, when: float) -> list[str]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT sha256 FROM parley_attachments WHERE owner = %s AND stored < %s", (self.owner, when)
            ).fetchall()
        )
        return [row[0] for row in rows]

    def _delete_blobs(self, digests: list[str]) -> None:
        self._run(
            lambda c: c.execute(
                "DELETE FROM parley_attachments WHERE owner = %s AND sha256 = ANY(%s)", (self.owner, digests)
            )
        )

    def _stored_messages(self) -> list[dict[str, Any]]:
        """The stored messages that have attachments (found by the database, not loaded whole)."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT m.message FROM parley_messages m JOIN parley_conversations c ON c.id = m.conversation_id "
                "WHERE c.owner = %s AND m.message::text LIKE '%%\"sha256\"%%'",
                (self.owner,),
            ).fetchall()
        )
        return [row[0] for row in rows if isinstance(row[0], dict)]


def _lock_conversation(conn: psycopg.Connection, owner: str, name: str) -> int:
    """Create ``owner``'s conversation ``name`` if missing and lock its row for this transaction; return its id."""
    row = conn.execute(
        "INSERT INTO parley_conversations (owner, name) VALUES (%s, %s) "
        "ON CONFLICT (owner, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (owner, name),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _insert(conn: psycopg.Connection, conversation: int, start: int, messages: list[Message]) -> None:
    """Insert ``messages`` at positions ``start``, ``start + 1``... (one pipelined batch)."""
    if messages:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO parley_messages (conversation_id, position, message) VALUES (%s, %s, %s)",
                [(conversation, start + i, Jsonb(_encode(m.to_dict()))) for i, m in enumerate(messages)],
            )


def _message(data: Any) -> Message:
    """A stored JSONB message as a Message.

    Raises:
        StoreError: the row does not hold a valid message (written by something else than Parley).
    """
    try:
        return Message.from_dict(_decode(data))  # from_dict checks the shape itself
    except InvalidMessageError as exc:
        raise StoreError(f"A stored message is not valid ({exc}).") from exc


#: A private-use character that stands in for U+0000 (which jsonb refuses) in stored strings; itself
#: stored doubled.
NUL_ESCAPE = "\ue000"


def _strings(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (a message's stored form) with ``change`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k): _strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, change) for v in value]
    return value


def _escape(text: str) -> str:
    """``text`` with U+0000 as ``NUL_ESCAPE`` + "0" (and ``NUL_ESCAPE`` itself doubled)."""
    if "\x00" not in text and NUL_ESCAPE not in text:
        return text
    return text.replace(NUL_ESCAPE, NUL_ESCAPE * 2).replace("\x00", NUL_ESCAPE + "0")


def _unescape(text: str) -> str:
    """``_escape`` undone."""
    if NUL_ESCAPE not in text:
        return text
    out, chars = [], iter(text)
    for char in chars:
        out.append(("\x00" if next(chars, "") == "0" else NUL_ESCAPE) if char == NUL_ESCAPE else char)
    return "".join(out)


def _encode(value: Any) -> Any:
    """``value`` ready for jsonb: every U+0000 in its strings escaped."""
    return _strings(value, _escape)


def _decode(value: Any) -> Any:
    """``_encode`` undone."""
    return _strings(value, _unescape)


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without the URL (which may hold the password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")
