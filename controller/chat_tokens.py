"""Chat tokens of the chat server's token-session websocket protocol (``POST /token``,
``GET /refresh_token``, ``WS /chat``): a token names one saved conversation and expires after a
lifetime in seconds.

``ChatTokens`` keeps them in this process (a dict under a lock); ``RedisChatTokens`` in Redis, shared
by every chat server. A token is a random UUID4, so it cannot be guessed. An expired token is
refused as expired; it is forgotten a lifetime later, on an issue.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any


class TokenError(Exception):
    """A token is unknown or expired; ``str(error)`` is a sentence for the client."""


@dataclass(frozen=True, slots=True)
class ChatToken:
    """One chat token.

    Attributes:
        token: the UUID4 the client sends (``?token=``).
        name: the saved conversation the token talks in.
        expires_at: ``time.monotonic()`` value after which the token is refused, in seconds.
        assistant: the id of the assistant the token's turns are answered by, or None (Parley).
    """

    token: str
    name: str
    expires_at: float
    assistant: str | None = None

    def expires_in(self, now: float | None = None) -> float:
        """Seconds left before the token expires (0 when it has)."""
        return max(0.0, self.expires_at - (time.monotonic() if now is None else now))


class ChatTokens:
    """Issue, look up and refresh chat tokens.

    Args:
        ttl: lifetime of a token in seconds (PARLEY_SESSION_TTL), counted from issue or refresh.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tokens: dict[str, ChatToken] = {}
        self._lock = threading.Lock()

    def issue(self, name: str, assistant: str | None = None) -> ChatToken:
        """A new token for conversation ``name`` (the name is used as given), answered by ``assistant``."""
        now = time.monotonic()
        grant = ChatToken(token=str(uuid.uuid4()), name=name, expires_at=now + self.ttl, assistant=assistant)
        with self._lock:  # forget tokens expired for a lifetime or more (until then they are "expired")
            for token in [k for k, t in self._tokens.items() if t.expires_at + self.ttl <= now]:
                del self._tokens[token]
            self._tokens[grant.token] = grant
        return grant

    def get(self, token: str) -> ChatToken:
        """The live chat token ``token``.

        Raises:
            TokenError: the token was never issued here (or long forgotten), or it expired.
        """
        with self._lock:
            grant = self._tokens.get(token)
            if grant is None:
                raise TokenError("This chat token is not known; get one from POST /token.")
            if grant.expires_at <= time.monotonic():
                raise TokenError("This chat token has expired; get a new one from POST /token.")
            return grant

    def refresh(self, token: str) -> ChatToken:
        """Give the live token ``token`` a full lifetime again and return it.

        Raises:
            TokenError: the token is unknown or already expired.
        """
        grant = self.get(token)
        renewed = replace(grant, expires_at=time.monotonic() + self.ttl)
        with self._lock:
            self._tokens[token] = renewed
        return renewed

    def revoke(self, name: str) -> int:
        """Forget every token of conversation ``name`` (it was deleted); returns how many."""
        with self._lock:
            gone = [token for token, grant in self._tokens.items() if grant.name == name]
            for token in gone:
                del self._tokens[token]
        return len(gone)

    def rename(self, old: str, new: str) -> None:
        """Point the tokens of conversation ``old`` at ``new`` (after a rename)."""
        with self._lock:
            for token, grant in list(self._tokens.items()):
                if grant.name == old:
                    self._tokens[token] = replace(grant, name=new)


class RedisChatTokens(ChatTokens):
    """Chat tokens in Redis (REDIS_URL), shared by every chat server: ``parley:session:<token>``
    holds the conversation name and expires by itself after the lifetime (Redis ``EX``).

    An expired token is gone from Redis, so it is refused as "not known or expired".

    Args:
        client: Redis (``decode_responses=True``).
        ttl: lifetime of a token in seconds.
    """

    PREFIX = "parley:session:"  # the key names of earlier versions, kept so live tokens stay valid
    ASSISTANT_PREFIX = "parley:session_assistant:"  # a token's assistant, when it has one, same lifetime

    def __init__(self, client: Any, ttl: float) -> None:
        super().__init__(ttl)
        self.client = client

    def issue(self, name: str, assistant: str | None = None) -> ChatToken:
        """A new token for conversation ``name`` (answered by ``assistant``), stored with its lifetime."""
        token = str(uuid.uuid4())
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.PREFIX + token, name, px=int(self.ttl * 1000))
        if assistant is not None:
            pipe.set(self.ASSISTANT_PREFIX + token, assistant, px=int(self.ttl * 1000))
        pipe.execute()
        return ChatToken(token=token, name=name, expires_at=time.monotonic() + self.ttl, assistant=assistant)

    def get(self, token: str) -> ChatToken:
        """The live chat token ``token``.

        Raises:
            TokenError: the token is unknown or expired.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.PREFIX + token)
        pipe.pttl(self.PREFIX + token)
        pipe.get(self.ASSISTANT_PREFIX + token)
        name, left_ms, assistant = pipe.execute()
        if name is None:
            raise TokenError("This chat token is not known or has expired; get a new one from POST /token.")
        expires_at = time.monotonic() + max(0, left_ms) / 1000
        return ChatToken(token=token, name=name, expires_at=expires_at, assistant=assistant)

    def refresh(self, token: str) -> ChatToken:
        """Give ``token`` a full lifetime again.

        Raises:
            TokenError: the token is unknown or expired.
        """
        grant = self.get(token)
        self.client.pexpire(self.PREFIX + token, int(self.ttl * 1000))
        self.client.pexpire(self.ASSISTANT_PREFIX + token, int(self.ttl * 1000))
        return replace(grant, expires_at=time.monotonic() + self.ttl)

    def revoke(self, name: str) -> int:
        """Delete every token of conversation ``name`` (it was deleted); returns how many."""
        gone = [
            key for key in self.client.scan_iter(match=self.PREFIX + "*", count=500) if self.client.get(key) == name
        ]
        if gone:
            self.client.delete(*gone, *(self.ASSISTANT_PREFIX + key[len(self.PREFIX) :] for key in gone))
        return len(gone)

    def rename(self, old: str, new: str) -> None:
        """Point the tokens of conversation ``old`` at ``new`` (keeping their lifetimes)."""
        for key in self.client.scan_iter(match=self.PREFIX + "*", count=500):
            if self.client.get(key) == old:
                self.client.set(key, new, keepttl=True, xx=True)
