"""Chat tokens of the chat server's token-session websocket protocol (``POST /token``,
``GET /refresh_token``, ``WS /chat``): a token names one saved conversation and expires after a
lifetime in seconds. A token belongs to the owner whose key asked for it (``owned_by``): another
owner's view of the tokens does not know it, and the websocket answers in its owner's store.

``ChatTokens`` keeps them in this process (a dict under a lock); ``RedisChatTokens`` in Redis, shared
by every chat server. A token is a random UUID4, so it cannot be guessed. An expired token is
refused as expired; it is forgotten a lifetime later, on an issue.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Self

from model.store import LOCAL_OWNER


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
        owner: whose conversation it is (the owner of the key that asked for the token).
    """

    token: str
    name: str
    expires_at: float
    assistant: str | None = None
    owner: str = LOCAL_OWNER

    def expires_in(self, now: float | None = None) -> float:
        """Seconds left before the token expires (0 when it has)."""
        return max(0.0, self.expires_at - (time.monotonic() if now is None else now))


class ChatTokens:
    """Issue, look up and refresh chat tokens.

    Args:
        ttl: lifetime of a token in seconds (PARLEY_SESSION_TTL), counted from issue or refresh.

    Attributes:
        owner: the owner this view serves (``owned_by``): its tokens only; None (the server's own
            view, for the websocket) knows every owner's and issues ``LOCAL_OWNER``'s.
    """

    owner: str | None = None

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tokens: dict[str, ChatToken] = {}
        self._lock = threading.Lock()

    def owned_by(self, owner: str) -> Self:
        """The view of these tokens (the same ones, shared) that issues ``owner``'s and knows only theirs."""
        view = copy.copy(self)
        view.owner = owner
        return view

    def _mine(self, grant: ChatToken) -> bool:
        return self.owner is None or grant.owner == self.owner

    def issue(self, name: str, assistant: str | None = None) -> ChatToken:
        """A new token for conversation ``name`` (the name is used as given), answered by ``assistant``."""
        now = time.monotonic()
        owner = self.owner or LOCAL_OWNER
        grant = ChatToken(str(uuid.uuid4()), name, now + self.ttl, assistant, owner)
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
            if grant is None or not self._mine(grant):
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
            gone = [token for token, grant in self._tokens.items() if grant.name == name and self._mine(grant)]
            for token in gone:
                del self._tokens[token]
        return len(gone)

    def rename(self, old: str, new: str) -> None:
        """Point the tokens of conversation ``old`` at ``new`` (after a rename)."""
        with self._lock:
            for token, grant in list(self._tokens.items()):
                if grant.name == old and self._mine(grant):
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
    OWNER_PREFIX = "parley:session_owner:"  # a token's owner when not LOCAL_OWNER, same lifetime

    def __init__(self, client: Any, ttl: float) -> None:
        super().__init__(ttl)
        self.client = client

    def issue(self, name: str, assistant: str | None = None) -> ChatToken:
        """A new token for conversation ``name`` (answered by ``assistant``), stored with its lifetime."""
        token, owner = str(uuid.uuid4()), self.owner or LOCAL_OWNER
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.PREFIX + token, name, px=int(self.ttl * 1000))
        if assistant is not None:
            pipe.set(self.ASSISTANT_PREFIX + token, assistant, px=int(self.ttl * 1000))
        if owner != LOCAL_OWNER:
            pipe.set(self.OWNER_PREFIX + token, owner, px=int(self.ttl * 1000))
        pipe.execute()
        return ChatToken(token, name, time.monotonic() + self.ttl, assistant, owner)

    def get(self, token: str) -> ChatToken:
        """The live chat token ``token``.

        Raises:
            TokenError: the token is unknown or expired.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.PREFIX + token)
        pipe.pttl(self.PREFIX + token)
        pipe.get(self.ASSISTANT_PREFIX + token)
        pipe.get(self.OWNER_PREFIX + token)
        name, left_ms, assistant, owner = pipe.execute()
        grant = ChatToken(token, name or "", time.monotonic() + max(0, left_ms) / 1000, assistant, owner or LOCAL_OWNER)
        if name is None or not self._mine(grant):
            raise TokenError("This chat token is not known or has expired; get a new one from POST /token.")
        return grant

    def refresh(self, token: str) -> ChatToken:
        """Give ``token`` a full lifetime again.

        Raises:
            TokenError: the token is unknown or expired.
        """
        grant = self.get(token)
        self.client.pexpire(self.PREFIX + token, int(self.ttl * 1000))
        self.client.pexpire(self.ASSISTANT_PREFIX + token, int(self.ttl * 1000))
        self.client.pexpire(self.OWNER_PREFIX + token, int(self.ttl * 1000))
        return replace(grant, expires_at=time.monotonic() + self.ttl)

    def revoke(self, name: str) -> int:
        """Delete every token of conversation ``name`` (it was deleted); returns how many."""
        gone = self._named(name)
        if gone:
            tokens = [key[len(self.PREFIX) :] for key in gone]
            self.client.delete(*gone, *(p + t for t in tokens for p in (self.ASSISTANT_PREFIX, self.OWNER_PREFIX)))
        return len(gone)

    def _named(self, name: str) -> list[str]:
        """The session keys of this view's tokens on conversation ``name``."""
        found = []
        for key in self.client.scan_iter(match=self.PREFIX + "*", count=500):
            if self.client.get(key) == name:
                owner = self.client.get(self.OWNER_PREFIX + key[len(self.PREFIX) :]) or LOCAL_OWNER
                if self.owner is None or owner == self.owner:
                    found.append(key)
        return found

    def rename(self, old: str, new: str) -> None:
        """Point the tokens of conversation ``old`` at ``new`` (keeping their lifetimes)."""
        for key in self._named(old):
            self.client.set(key, new, keepttl=True, xx=True)
