"""``RedisStore``: conversations in Redis (CONVERSATIONS_URL=redis://...), through redis-py.

Keys: one list per conversation, ``parley:conv:<name>``, each element a message as JSON in the
conversations.json form; and the index ``parley:conversations``, a sorted set of the names scored
by their newest message time (seconds since 1970), which also says which conversations exist (an
empty conversation has no list: Redis deletes empty lists); and ``parley:preferences:<owner>``, the
owner's settings as a JSON string; and ``parley:accounts:<subject>``, who signed in (their e-mail,
name and last sign-in as a JSON string); and ``parley:attachment:<sha256>``, an image or recording as a
hash of its type, its bytes in base64 and when it was last stored (seconds since 1970). Those are
``LOCAL_OWNER``'s keys; every other owner's conversations and attachments have the same keys under
``parley:u:<owner_key(owner)>:`` (``parley:u:<key>:conversations``, ``parley:u:<key>:conv:<name>``,
``parley:u:<key>:attachment:<sha256>``), so each command names one owner's keys only. Debian's
redis-server has no RedisJSON module, so nothing needs one. Writes are MULTI/EXEC transactions;
``append`` is one ``RPUSH``, which Redis runs atomically, so concurrent appends to one
conversation never overwrite each other.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from model.attachments import Blob
from model.message import InvalidMessageError, Message
from model.store import (
    LOCAL_OWNER,
    BaseConversationStore,
    Conversations,
    StoreError,
    last_activity,
    mask_url,
    normalize_name,
    owner_key,
)

if TYPE_CHECKING:
    from model.store import RecordKind

T = TypeVar("T")
INDEX = "parley:conversations"
PREFIX = "parley:conv:"
ATTACHMENT = "parley:attachment:"
#: Assistants: a hash of id → JSON, and a hash of name key → id (which keeps names unique).
ASSISTANTS = "parley:assistants"
ASSISTANT_NAMES = "parley:assistant_names"
#: Stores an assistant atomically (Redis runs a script alone): KEYS assistants, names; ARGV id,
#: name key, JSON, "1" to create. Returns "" or "id", "missing", "name" (``_write_assistant``).
WRITE_ASSISTANT = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[4] == '1' and exists == 1 then return 'id' end
if ARGV[4] == '0' and exists == 0 then return 'missing' end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return 'name' end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[2], all[i]) end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return ''
"""
#: Deletes an assistant and frees its name: KEYS assistants, names; ARGV id. Returns 1 or 0.
DELETE_ASSISTANT = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[2], all[i]) end
end
return 1
"""


def redis_client(url: str) -> redis.Redis:
    """A Redis client for ``url`` that decodes strings and, when a connection broke (a restarted
    server), reconnects and tries the command again (3 times, backing off from 0.1 s to 1 s).

    Raises:
        ValueError: the URL is malformed.
    """
    return redis.Redis.from_url(url, **_client_options())


def async_redis_client(url: str) -> redis.asyncio.Redis:
    """``redis_client`` for asyncio.

    Raises:
        ValueError: the URL is malformed.
    """
    options = _client_options()
    options["retry"] = redis.asyncio.retry.Retry(ExponentialBackoff(cap=1.0, base=0.1), 3)
    return redis.asyncio.Redis.from_url(url, **options)


def _client_options() -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), 3),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 30,
    }


def _score(messages: list[Message]) -> float:
    """The index score of a conversation: its newest message time in seconds since 1970 (0 if none)."""
    newest = last_activity(messages)
    if not newest:
        return 0.0
    try:
        return datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _encode(messages: list[Message]) -> list[str]:
    return [json.dumps(m.to_dict(), ensure_ascii=False) for m in messages]


def _decode(items: list[Any]) -> list[Message]:
    try:
        return [Message.from_dict(json.loads(item)) for item in items]
    except (ValueError, InvalidMessageError) as exc:
        raise StoreError(f"A stored message is not valid ({exc}).") from exc


class RedisStore(BaseConversationStore):
    """The conversation store in Redis.

    Args:
        url: ``redis://[:password@]host:port/db``.

    Raises:
        StoreError: the server does not answer within 5 s or the URL is malformed; the sentence
            names the URL, password masked.
    """

    def __init__(self, url: str) -> None:
        self.location = mask_url(url)
        self._namespace(LOCAL_OWNER)
        try:
            self._redis = redis_client(url)
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(
                f"Could not connect to Redis at {self.location}: {exc}. Check CONVERSATIONS_URL and that the "
                "server is running; nothing was saved elsewhere."
            ) from exc

    def _namespace(self, owner: str) -> None:
        """Set this store's keys to ``owner``'s (the module's docstring lists them)."""
        base = "parley:" if owner == LOCAL_OWNER else f"parley:u:{owner_key(owner)}:"
        self.owner = owner
        self._index, self._prefix, self._attachment = (
            base + key.removeprefix("parley:") for key in (INDEX, PREFIX, ATTACHMENT)
        )

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _scoped(self, owner: str) -> RedisStore:
        scoped = self._sibling(owner)
        scoped._namespace(owner)
        return scoped

    def close(self) -> None:
        """Close the connection pool (shared with every ``owned_by`` store made from this one)."""
        self._redis.close()

    def _run(self, work: Callable[[redis.Redis], T]) -> T:
        """Run ``work``, again if the connection broke (a restarted server).

        Raises:
            StoreError: Redis stayed unreachable.
        """
        return self._retrying(
            lambda: work(self._redis),
            (redis.ConnectionError, redis.TimeoutError),
            lambda exc: f"Could not reach Redis at {self.location}: {exc}. Your conversation is still here; try again.",
        )

    # ----- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The names, newest activity first."""
        found = self._run(lambda r: r.zrevrange(self._index, 0, -1))
        return [str(name) for name in found]  # already strings: the client decodes responses

    def exists(self, name: str) -> bool:
        """True if ``name`` (trimmed) is in the index."""
        return self._run(lambda r: r.zscore(self._index, name.strip())) is not None

    def get(self, name: str) -> list[Message] | None:
        """The messages of ``name``, or None if it is not in the index."""

        def work(r: redis.Redis) -> tuple[Any, Any]:
            pipe = r.pipeline(transaction=True)
            pipe.zscore(self._index, name)
            pipe.lrange(self._key(name), 0, -1)
            score, items = pipe.execute()
            return score, items

        score, items = self._run(work)
        return None if score is None else _decode(items)

    def load_all(self) -> Conversations:
        """Every conversation, newest activity first."""
        names = self.names()

        def work(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.lrange(self._key(name), 0, -1)
            return pipe.execute()

        return {name: _decode(items) for name, items in zip(names, self._run(work), strict=True)}

    # ----- writing -------------------------------------------------------------------------
    def save(self, name: str, messages: list[Message], backup: bool = True) -> str:
        """Replace what ``name`` holds (MULTI: DEL, RPUSH, ZADD); this store keeps no backups."""
        name = normalize_name(name)

        def work(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(self._key(name))
            if messages:
                pipe.rpush(self._key(name), *_encode(messages))
            pipe.zadd(self._index, {name: _score(messages)})
            pipe.execute()

        self._run(work)
        return name

    def append(self, name: str, messages: list[Message]) -> int:
        """Add ``messages`` at the end (MULTI: RPUSH, ZADD GT); returns the new length."""
        name = normalize_name(name)

        def work(r: redis.Redis) -> int:
            pipe = r.pipeline(transaction=True)
            if messages:
                pipe.rpush(self._key(name), *_encode(messages))
            else:
                pipe.llen(self._key(name))
            pipe.zadd(self._index, {name: 0.0}, nx=True)
            pipe.zadd(self._index, {name: _score(messages)}, gt=True)
            return int(pipe.execute()[0])

        return self._run(work)

    def delete(self, name: str) -> None:
        """Delete ``name`` (MULTI: DEL, ZREM)."""

        def work(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(self._key(name))
            pipe.zrem(self._index, name)
            pipe.execute()

        self._run(work)
        self._collect_quietly()

    def rename(self, old: str, new: str, replace: bool = False) -> str:
        """Rename ``old`` to ``new`` (WATCH both, then MULTI: DEL and ZREM of ``new`` with ``replace``,
        RENAME, ZREM, ZADD)."""
        new = normalize_name(new)
        if new == old:
            if not self.exists(old):
                raise StoreError(f"There is no saved conversation called {old!r}.")
            return new

        def work(r: redis.Redis) -> None:
            with r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(self._index, self._key(old), self._key(new))  # type: ignore[no-untyped-call]  # unannotated in redis-py
                        score = pipe.zscore(self._index, old)
                        if score is None:
                            raise StoreError(f"There is no saved conversation called {old!r}.")
                        if pipe.zscore(self._index, new) is not None and not replace:
                            raise StoreError(f"A conversation called {new!r} already exists; pick another name.")
                        has_messages = pipe.exists(self._key(old))
                        pipe.multi()
                        pipe.delete(self._key(new))  # what ``replace`` replaces (nothing otherwise)
                        pipe.zrem(self._index, new)
                        if has_messages:
                            pipe.rename(self._key(old), self._key(new))
                        pipe.zrem(self._index, old)
                        pipe.zadd(self._index, {new: score})
                        pipe.execute()
                        return
                    except redis.WatchError:  # someone wrote in between: look again
                        continue

        self._run(work)
        return new

    # ----- preferences and accounts -----------------------------------------------------------
    def _record_texts(self, kind: RecordKind, key: str | None = None) -> dict[str, str | bytes]:
        prefix = f"parley:{kind}:"
        if key is not None:
            found = self._run(lambda r: r.get(prefix + key))
            return {} if found is None else {key: found}

        def work(r: redis.Redis) -> dict[str, str | bytes]:
            keys = [str(k) for k in r.scan_iter(match=prefix + "*", count=500)]
            values = r.mget(keys) if keys else []
            return {k[len(prefix) :]: v for k, v in zip(keys, values, strict=True) if v is not None}

        return self._run(work)

    def _save_record_text(self, kind: RecordKind, key: str, text: str) -> None:
        """One SET of ``parley:<kind>:<key>``."""
        self._run(lambda r: r.set(f"parley:{kind}:{key}", text))

    # ----- assistants -------------------------------------------------------------------------
    def _assistant_texts(self) -> dict[str, str | bytes]:
        found = self._run(lambda r: r.hgetall(ASSISTANTS))
        return {str(k): v for k, v in found.items()}  # already strings: the client decodes responses

    def _write_assistant(self, assistant_id: str, key: str, text: str, create: bool) -> str | None:
        """One script (``WRITE_ASSISTANT``): the checks and the write happen with nothing in between."""
        keys, args = [ASSISTANTS, ASSISTANT_NAMES], [assistant_id, key, text, "1" if create else "0"]
        outcome = self._run(lambda r: r.eval(WRITE_ASSISTANT, 2, *keys, *args))
        return str(outcome) or None

    def _delete_assistant(self, assistant_id: str) -> bool:
        deleted = self._run(lambda r: r.eval(DELETE_ASSISTANT, 2, ASSISTANTS, ASSISTANT_NAMES, assistant_id))
        return bool(int(deleted))

    # ----- attachments ------------------------------------------------------------------------
    def _put_blob(self, digest: str, data: bytes, mime: str) -> None:
        fields = ["mime", mime, "data", base64.b64encode(data).decode("ascii"), "stored", repr(time.time())]
        self._run(lambda r: r.hset(self._attachment + digest, items=fields))

    def _get_blob(self, digest: str) -> Blob | None:
        found = self._run(lambda r: r.hmget(self._attachment + digest, ["mime", "data"]))
        if not found or found[1] is None:
            return None
        return Blob(base64.b64decode(found[1]), str(found[0] or "application/octet-stream"))

    def _blobs_before(self, when: float) -> list[str]:
        def work(r: redis.Redis) -> list[str]:
            old = []
            for key in r.scan_iter(match=self._attachment + "*", count=500):
                stored = r.hget(key, "stored")
                if stored is not None and float(stored) < when:
                    old.append(str(key)[len(self._attachment) :])
            return old

        return self._run(work)

    def _delete_blobs(self, digests: list[str]) -> None:
        self._run(lambda r: r.delete(*(self._attachment + d for d in digests)))
