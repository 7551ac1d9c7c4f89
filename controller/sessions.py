"""Chat-server session tokens (seed 002's protocol): a token names one saved conversation and
expires after a lifetime in seconds.

Tokens live in this process (a dict under a lock); a token is a random UUID4, so it cannot be
guessed. An expired token is refused as expired; it is forgotten a lifetime later, on an issue.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any


class SessionError(Exception):
    """A token is unknown or expired; ``str(error)`` is a sentence for the client."""


@dataclass(frozen=True, slots=True)
class Session:
    """One session.

    Attributes:
        token: the UUID4 the client sends (``?token=``).
        name: the saved conversation the session talks in.
        expires_at: ``time.monotonic()`` value after which the token is refused, in seconds.
    """

    token: str
    name: str
    expires_at: float

    def expires_in(self, now: float | None = None) -> float:
        """Seconds left before the token expires (0 when it has)."""
        return max(0.0, self.expires_at - (time.monotonic() if now is None else now))


class SessionTokens:
    """Issue, look up and refresh session tokens.

    Args:
        ttl: lifetime of a token in seconds (PARLEY_SESSION_TTL), counted from issue or refresh.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def issue(self, name: str) -> Session:
        """Return a new session for conversation ``name`` (the name is used as given)."""
        now = time.monotonic()
        session = Session(token=str(uuid.uuid4()), name=name, expires_at=now + self.ttl)
        with self._lock:  # forget tokens expired for a lifetime or more (until then they are "expired")
            for token in [t for t, s in self._sessions.items() if s.expires_at + self.ttl <= now]:
                del self._sessions[token]
            self._sessions[session.token] = session
        return session

    def get(self, token: str) -> Session:
        """Return the live session of ``token``.

        Raises:
            SessionError: the token was never issued here (or long forgotten), or it expired.
        """
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                raise SessionError("This session token is not known; get one from POST /token.")
            if session.expires_at <= time.monotonic():
                raise SessionError("This session token has expired; get a new one from POST /token.")
            return session

    def refresh(self, token: str) -> Session:
        """Give the live session of ``token`` a full lifetime again and return it.

        Raises:
            SessionError: the token is unknown or already expired.
        """
        session = self.get(token)
        renewed = Session(token=session.token, name=session.name, expires_at=time.monotonic() + self.ttl)
        with self._lock:
            self._sessions[token] = renewed
        return renewed

    def rename(self, old: str, new: str) -> None:
        """Point the sessions of conversation ``old`` at ``new`` (after a rename)."""
        with self._lock:
            for token, session in list(self._sessions.items()):
                if session.name == old:
                    self._sessions[token] = Session(token, new, session.expires_at)


class RedisSessionTokens(SessionTokens):
    """Session tokens in Redis (REDIS_URL), shared by every chat server: ``parley:session:<token>``
    holds the conversation name and expires by itself after the lifetime (Redis ``EX``).

    An expired token is gone from Redis, so it is refused as "not known or expired".

    Args:
        client: Redis (``decode_responses=True``).
        ttl: lifetime of a token in seconds.
    """

    PREFIX = "parley:session:"

    def __init__(self, client: Any, ttl: float) -> None:
        super().__init__(ttl)
        self.client = client

    def issue(self, name: str) -> Session:
        """Return a new session for conversation ``name``, stored with its lifetime."""
        token = str(uuid.uuid4())
        self.client.set(self.PREFIX + token, name, px=int(self.ttl * 1000))
        return Session(token=token, name=name, expires_at=time.monotonic() + self.ttl)

    def get(self, token: str) -> Session:
        """Return the live session of ``token``.

        Raises:
            SessionError: the token is unknown or expired.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.PREFIX + token)
        pipe.pttl(self.PREFIX + token)
        name, left_ms = pipe.execute()
        if name is None:
            raise SessionError("This session token is not known or has expired; get a new one from POST /token.")
        return Session(token=token, name=name, expires_at=time.monotonic() + max(0, left_ms) / 1000)

    def refresh(self, token: str) -> Session:
        """Give ``token`` a full lifetime again.

        Raises:
            SessionError: the token is unknown or expired.
        """
        session = self.get(token)
        self.client.pexpire(self.PREFIX + token, int(self.ttl * 1000))
        return Session(token=token, name=session.name, expires_at=time.monotonic() + self.ttl)

    def rename(self, old: str, new: str) -> None:
        """Point the sessions of conversation ``old`` at ``new`` (keeping their lifetimes)."""
        for key in self.client.scan_iter(match=self.PREFIX + "*", count=500):
            if self.client.get(key) == old:
                self.client.set(key, new, keepttl=True, xx=True)
