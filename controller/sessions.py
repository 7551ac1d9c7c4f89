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
