"""Per-person API keys for the chat server, made on the Account page, and the service user that
PARLEY_API_KEYS act as when accounts are on.

A key reads ``sk-parley-<id>-<secret>``: ``id`` is 12 hex digits that name its record, ``secret``
43 URL-safe characters (256 random bits, ``secrets.token_urlsafe(32)``). It is shown once, when it
is made; the store keeps only a salted scrypt hash of the secret (``hashlib.scrypt``, RFC 7914, with
n = 2**14, r = 8, p = 1: about 16 MiB and a few tens of milliseconds per check, so a stolen store
does not give the keys away).

Records (``BaseConversationStore.records``), shared by every instance through the store:
``"api_keys"`` by id, ``{"owner", "name", "salt", "hash", "created", "revoked"}`` (times ISO 8601
UTC; ``revoked`` null while the key works), and ``"api_key_uses"`` by id, ``{"last_used"}``, written
apart so that noting a use can never undo a revocation made at the same moment.

Every request reads the key's record again (one keyed read), so a revoked key is refused by every
instance at its next request; only the scrypt result is remembered in the process, by the SHA-256
of the key and the stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from model.store import BaseConversationStore, StoreError, check_owner

#: The owner PARLEY_API_KEYS act as when accounts are on: a user with data of its own.
SERVICE_OWNER = "service"
#: What every per-person key starts with (so it is recognised, e.g. by secret scanners).
KEY_PREFIX = "sk-parley-"
#: The form of a per-person key: prefix, 12 hex digits of id, a hyphen, 43 URL-safe characters.
KEY_PATTERN = re.compile(r"sk-parley-([0-9a-f]{12})-([A-Za-z0-9_-]{43})")
#: scrypt's cost parameters (RFC 7914): CPU/memory cost, block size, parallelism, and key length.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_BYTES = 2**14, 8, 1, 32
#: Longest key name, in characters.
MAX_KEY_NAME_CHARS = 60
#: Most working keys one person may hold.
MAX_KEYS_PER_OWNER = 20
#: Seconds between two notes of one key's last use (a busy client writes once a minute, not per request).
USE_NOTE_SECONDS = 60.0
#: scrypt results remembered in the process at most.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class ApiKey:
    """One per-person API key, as stored (never the key itself).

    Attributes:
        id: the 12 hex digits in the key that name its record.
        owner: whose data the key reaches (the provider's subject).
        name: what the person called it ("laptop", "CI").
        created: when it was made, ISO 8601 UTC.
        last_used: when it last opened a request, ISO 8601 UTC (to the minute), or None.
        revoked: when it was revoked, ISO 8601 UTC, or None while it works.
    """

    id: str
    owner: str
    name: str
    created: str
    last_used: str | None = None
    revoked: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(
        secret.encode("ascii"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_BYTES, maxmem=64 << 20
    ).hex()


class ApiKeys:
    """Make, list, check and revoke per-person API keys in ``store`` (any owner's view of it: the
    records are shared by every owner).

    Args:
        store: the conversation store the keys live beside.
        clock: seconds, for spacing the notes of a key's use (for tests).

    Thread-safe: one instance serves every request of a server.
    """

    def __init__(self, store: BaseConversationStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._checked: dict[str, str] = {}  # sha256(key) → the stored hash it was found to match
        self._noted: dict[str, float] = {}  # key id → clock() of its last note of use

    def make(self, owner: str, name: str) -> tuple[ApiKey, str]:
        """A new key for ``owner`` called ``name``.

        Returns:
            the stored key and the key itself (``sk-parley-…``), which is never kept: show it once.

        Raises:
            StoreError: a blank or too long name, a name ``owner`` already uses for a working key,
                ``MAX_KEYS_PER_OWNER`` working keys already, an invalid owner, or a failed write.
        """
        check_owner(owner)
        name = " ".join(name.split())
        if not name or len(name) > MAX_KEY_NAME_CHARS:
            raise StoreError(f"Give the key a name of 1 to {MAX_KEY_NAME_CHARS} characters.")
        working = [k for k in self.of(owner) if k.revoked is None]
        if any(k.name.casefold() == name.casefold() for k in working):
            raise StoreError(f"You already have a key called {name!r}; pick another name.")
        if len(working) >= MAX_KEYS_PER_OWNER:
            raise StoreError(f"You have {MAX_KEYS_PER_OWNER} keys already; revoke one you no longer use.")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        created = _now()
        record = {"owner": owner, "name": name, "salt": salt.hex(), "hash": _hash(secret, salt), "created": created}
        self.store.save_record("api_keys", key_id, {**record, "revoked": None})
        return ApiKey(key_id, owner, name, created), f"{KEY_PREFIX}{key_id}-{secret}"

    def of(self, owner: str | None = None) -> list[ApiKey]:
        """``owner``'s keys (everyone's with None), working and revoked, newest first.

        Raises:
            StoreError: the store cannot be read.
        """
        uses = self.store.records("api_key_uses")
        found = []
        for key_id, record in self.store.records("api_keys").items():
            if owner is None or record.get("owner") == owner:
                found.append(self._key(key_id, record, uses.get(key_id, {})))
        return sorted(found, key=lambda k: (k.created, k.id), reverse=True)

    @staticmethod
    def _key(key_id: str, record: dict[str, object], use: dict[str, object]) -> ApiKey:
        revoked, last_used = record.get("revoked"), use.get("last_used")
        return ApiKey(
            key_id,
            str(record.get("owner", "")),
            str(record.get("name", "")),
            str(record.get("created", "")),
            str(last_used) if last_used else None,
            str(revoked) if revoked else None,
        )

    def revoke(self, owner: str, key_id: str) -> bool:
        """Revoke ``owner``'s key ``key_id`` (it is kept, marked, so the list shows when); False when
        ``owner`` has no such working key.

        Raises:
            StoreError: the store cannot be read or written.
        """
        record = self.store.records("api_keys", key_id).get(key_id)
        if record is None or record.get("owner") != owner or record.get("revoked"):
            return False
        self.store.save_record("api_keys", key_id, {**record, "revoked": _now()})
        return True

    def revoke_all(self, owner: str) -> int:
        """Revoke every working key of ``owner`` (an admin's action); returns how many.

        Raises:
            StoreError: the store cannot be read or written.
        """
        return sum(self.revoke(owner, k.id) for k in self.of(owner) if k.revoked is None)

    def owner_of(self, key: str) -> ApiKey | None:
        """The working per-person key ``key`` is, read from the store now; None when ``key`` is not
        one (another form, unknown, revoked, or a wrong secret). Notes the use at most once a minute.

        Raises:
            StoreError: the store cannot be read (the caller refuses the request).
        """
        matched = KEY_PATTERN.fullmatch(key)
        if matched is None:
            return None
        key_id, secret = matched.groups()
        record = self.store.records("api_keys", key_id).get(key_id)
        if record is None or record.get("revoked") or not record.get("owner"):
            return None
        stored, digest = str(record.get("hash", "")), hashlib.sha256(key.encode("ascii")).hexdigest()
        with self._lock:
            known = self._checked.get(digest) == stored
        if not known:
            try:
                salt = bytes.fromhex(str(record.get("salt", "")))
            except ValueError:
                return None
            if not hmac.compare_digest(_hash(secret, salt), stored):
                return None
            with self._lock:
                if len(self._checked) >= MAX_REMEMBERED:
                    self._checked.clear()
                self._checked[digest] = stored
        self._note_use(key_id)
        return self._key(key_id, record, {})

    def _note_use(self, key_id: str) -> None:
        now = self._clock()
        with self._lock:
            if now - self._noted.get(key_id, -USE_NOTE_SECONDS) < USE_NOTE_SECONDS:
                return
            if len(self._noted) >= MAX_REMEMBERED:
                self._noted.clear()
            self._noted[key_id] = now
        try:
            self.store.save_record("api_key_uses", key_id, {"last_used": _now()})
        except StoreError:
            with self._lock:
                self._noted.pop(key_id, None)  # noted next time instead; the request goes on
