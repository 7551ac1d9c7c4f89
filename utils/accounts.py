"""Re-checking a sign-in against its OpenID Connect provider, so that a person removed there (or whose
tokens the provider revoked) loses access to Parley at their next request after the check interval.

Streamlit's ``st.login`` keeps the person's identity in a signed cookie for 30 days and never asks
the provider again. ``SignInCheck`` asks the provider's userinfo endpoint (OpenID Connect Core 1.0,
section 5.3; found in the provider's discovery document, OpenID Connect Discovery 1.0 section 3)
with the access token Streamlit exposes (``expose_tokens = "access"``): a 2xx answer means the
sign-in still stands, a 4xx means it no longer does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

#: Longest time between two checks of one sign-in, in seconds (at least every 5 minutes).
RECHECK_SECONDS = 300.0
#: Longest wait for the provider, in seconds, per request.
PROVIDER_TIMEOUT = 5.0
#: Largest answer read from the provider, in bytes (discovery documents are a few KB).
MAX_ANSWER_BYTES = 1_000_000
#: Sign-ins remembered at most; older ones are dropped first.
MAX_REMEMBERED = 10_000
#: Largest secrets file read, in bytes (a secrets file holds a few keys).
MAX_SECRETS_BYTES = 1_000_000


def auth_metadata_url(files: Iterable[str]) -> str | None:
    """The provider's discovery document URL when one of Streamlit's secrets ``files`` (its
    ``secrets.files`` option, in order: a later file wins) configures ``st.login`` with an ``[auth]``
    section holding a ``server_metadata_url``; None when none does, which means accounts are off.

    Files are read as TOML, at most ``MAX_SECRETS_BYTES`` each; a missing, unreadable or broken
    file is skipped (Streamlit reports a broken one itself when it loads it). The files are read here
    rather than through ``st.secrets``, which copies every top-level secret into the process's
    environment when it loads."""
    found = None
    for name in files:
        path = Path(name).expanduser()
        try:
            if not path.is_file() or path.stat().st_size > MAX_SECRETS_BYTES:
                continue
            auth = tomllib.loads(path.read_text(encoding="utf-8")).get("auth")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(auth, dict) and auth.get("server_metadata_url"):
            found = str(auth["server_metadata_url"])
    return found


class ProviderUnreachable(Exception):
    """The provider did not answer usefully (network error, timeout, 5xx, or a discovery document
    without a ``userinfo_endpoint``)."""


class SignInCheck:
    """Asks the provider whether sign-ins still stand, at most once per ``interval`` per access token.

    Args:
        metadata_url: the provider's discovery document (``server_metadata_url`` in ``[auth]``).
        interval: seconds a sign-in's answer is reused (300 by default, at most 300).
        clock: monotonic seconds (for tests).

    Thread-safe: every Streamlit session of one process shares one instance.
    """

    def __init__(
        self, metadata_url: str, interval: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metadata_url = metadata_url
        self.interval = min(interval, RECHECK_SECONDS)
        self._clock = clock
        self._lock = threading.Lock()
        self._userinfo: str | None = None
        self._answers: dict[str, tuple[float, bool]] = {}

    def still_valid(self, access_token: str) -> bool:
        """True while the provider accepts ``access_token`` at its userinfo endpoint, as of at most
        ``interval`` seconds ago. A provider that cannot be reached keeps the last answer (True for a
        sign-in never checked: the cookie is signed, and an outage must not lock everyone out) and is
        asked again at the next request; the failure is logged without the token."""
        key = hashlib.sha256(access_token.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            known = self._answers.get(key)
        if known is not None and (not known[1] or now - known[0] < self.interval):
            return known[1]  # a refused token never becomes valid again
        try:
            valid = self._ask(access_token)
        except ProviderUnreachable as exc:
            log.warning("Could not re-check a sign-in with the provider: %s", exc)
            return True if known is None else known[1]
        with self._lock:
            if len(self._answers) >= MAX_REMEMBERED:
                for old in sorted(self._answers, key=lambda k: self._answers[k][0])[: MAX_REMEMBERED // 10]:
                    del self._answers[old]
            self._answers[key] = (now, valid)
        return valid

    def _ask(self, access_token: str) -> bool:
        endpoint = self._userinfo_endpoint()
        status, _ = _get(endpoint, {"Authorization": f"Bearer {access_token}"})
        if 200 <= status < 300:
            return True
        if 400 <= status < 500:
            return False
        raise ProviderUnreachable(f"its userinfo endpoint answered HTTP {status}")

    def _userinfo_endpoint(self) -> str:
        if self._userinfo is None:
            status, body = _get(self.metadata_url, {})
            if status != 200:
                raise ProviderUnreachable(f"its discovery document answered HTTP {status}")
            try:
                endpoint = json.loads(body)["userinfo_endpoint"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ProviderUnreachable("its discovery document names no userinfo_endpoint") from exc
            self._userinfo = str(endpoint)
        return self._userinfo


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET ``url``: its status and at most ``MAX_ANSWER_BYTES`` of its body, within
    ``PROVIDER_TIMEOUT`` seconds per step. Raises ProviderUnreachable on a network error or timeout."""
    try:
        with httpx.stream("GET", url, headers=headers, timeout=PROVIDER_TIMEOUT) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ProviderUnreachable(f"its answer was over {MAX_ANSWER_BYTES:,} bytes")
            return response.status_code, body
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(type(exc).__name__) from exc
