"""``RedisStore``: conversations in Redis (CONVERSATIONS_URL=redis://...), through redis-py.

Keys: one list per conversation, ``parley:conv:<name>``, each element a message as JSON in the
conversations.json form; and the index ``parley:conversations``, a sorted set of the names scored
by their newest message time (seconds since 1970), which also says which conversations exist (an
empty conversation has no list: Redis deletes empty lists); and ``parley:preferences:<owner>``, the
owner's settings as a JSON string; and ``parley:attachment:<sha256>``, an image or recording as a
hash of its type, its bytes in base64 and when it was last stored (seconds since 1970). Debian's
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
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from model.attachments import Blob
from model.message import InvalidMessageError, Message
from model.store import (
    BaseConversationStore,
    Conversations,
    StoreError,
    last_activity,
    mask_url,
    normalize_name,
)

T = TypeVar("T")
INDEX = "parley:conversations"
PREFIX = "parley:conv:"
PREFERENCES = "parley:preferences:"
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


def _key(name: str) -> str:
    return PREFIX + name


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
        try:
            self._redis = redis_client(url)
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(
                f"Could not connect to Redis at {self.location}: {exc}. Check CONVERSATIONS_URL and that the "
                "server is running; nothing was saved elsewhere."
            ) from exc

    def close(self) -> None:
        """Close the connection pool."""
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
        found = self._run(lambda r: r.zrevrange(INDEX, 0, -1))
        return [str(name) for name in found]  # already strings: the client decodes responses

    def exists(self, name: str) -> bool:
        """True if ``name`` (trimmed) is in the index."""
        return self._run(lambda r: r.zscore(INDEX, name.strip())) is not None

    def get(self, name: str) -> list[Message] | None:
        """The messages of ``name``, or None if it is not in the index."""

        def work(r: redis.Redis) -> tuple[Any, Any]:
            pipe = r.pipeline(transaction=True)
            pipe.zscore(INDEX, name)
            pipe.lrange(_key(name), 0, -1)
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
                pipe.lrange(_key(name), 0, -1)
            return pipe.execute()

        return {name: _decode(items) for name, items in zip(names, self._run(work), strict=True)}

    # ----- writing -------------------------------------------------------------------------
    def save(self, name: str, messages: list[Message], backup: bool = True) -> str:
        """Replace what ``name`` holds (MULTI: DEL, RPUSH, ZADD); this store keeps no backups."""
        name = normalize_name(name)

        def work(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(_key(name))
            if messages:
                pipe.rpush(_key(name), *_encode(messages))
            pipe.zadd(INDEX, {name: _score(messages)})
            pipe.execute()

        self._run(work)
        return name

    def append(self, name: str, messages: list[Message]) -> int:
        """Add ``messages`` at the end (MULTI: RPUSH, ZADD GT); returns the new length."""
        name = normalize_name(name)

        def work(r: redis.Redis) -> int:
            pipe = r.pipeline(transaction=True)
            if messages:
                pipe.rpush(_key(name), *_encode(messages))
            else:
                pipe.llen(_key(name))
            pipe.zadd(INDEX, {name: 0.0}, nx=True)
            pipe.zadd(INDEX, {name: _score(messages)}, gt=True)
            return int(pipe.execute()[0])

        return self._run(work)

    def delete(self, name: str) -> None:
        """Delete ``name`` (MULTI: DEL, ZREM)."""

        def work(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(_key(name))
            pipe.zrem(INDEX, name)
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
                        pipe.watch(INDEX, _key(old), _key(new))  # type: ignore[no-untyped-call]  # unannotated in redis-py
                        score = pipe.zscore(INDEX, old)
                        if score is None:
                            raise StoreError(f"There is no saved conversation called {old!r}.")
                        if pipe.zscore(INDEX, new) is not None and not replace:
                            raise StoreError(f"A conversation called {new!r} already exists; pick another name.")
                        has_messages = pipe.exists(_key(old))
                        pipe.multi()
                        pipe.delete(_key(new))  # what ``replace`` replaces (nothing otherwise)
                        pipe.zrem(INDEX, new)
                        if has_messages:
                            pipe.rename(_key(old), _key(new))
                        pipe.zrem(INDEX, old)
                        pipe.zadd(INDEX, {new: score})
                        pipe.execute()
                        return
                    except redis.WatchError:  # someone wrote in between: look again
                        continue

        self._run(work)
        return new

    # ----- preferences -----------------------------------------------------------------------
    def _preferences_text(self, owner: str) -> str | bytes | None:
        return self._run(lambda r: r.get(PREFERENCES + owner))

    def _save_preferences_text(self, text: str, owner: str) -> None:
        """One SET of ``parley:preferences:<owner>``."""
        self._run(lambda r: r.set(PREFERENCES + owner, text))

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
        self._run(lambda r: r.hset(ATTACHMENT + digest, items=fields))

    def _get_blob(self, digest: str) -> Blob | None:
        found = self._run(lambda r: r.hmget(ATTACHMENT + digest, ["mime", "data"]))
        if not found or found[1] is None:
            return None
        return Blob(base64.b64decode(found[1]), str(found[0] or "application/octet-stream"))

    def _blobs_before(self, when: float) -> list[str]:
        def work(r: redis.Redis) -> list[str]:
            old = []
            for key in r.scan_iter(match=ATTACHMENT + "*", count=500):
                stored = r.hget(key, "stored")
                if stored is not None and float(stored) < when:
                    old.append(str(key)[len(ATTACHMENT) :])
            return old

        return self._run(work)

    def _delete_blobs(self, digests: list[str]) -> None:
        self._run(lambda r: r.delete(*(ATTACHMENT + d for d in digests)))
