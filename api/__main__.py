"""``python -m api`` (``make serve``): the chat server with uvicorn on 127.0.0.1:PARLEY_API_PORT.

With no PARLEY_API_KEYS, one random key is made at start and printed once on this console (as
Jupyter prints its token); it is never written to a file or a log line.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys

import uvicorn
from pydantic import ValidationError

import utils  # noqa: F401  (sets USE_TORCH=0 for this process before llama-index is imported)
from settings import load_settings


class RedactSecrets(logging.Filter):
    """Replace the value of every ``token=`` and ``key=`` in a log record's text with ``***``
    (uvicorn logs each websocket's path with its query string, which carries the chat token)."""

    PATTERN = re.compile(r"((?:token|key)=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        message = record.getMessage()
        redacted = self.PATTERN.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def main() -> int:
    """Start the server; returns the exit code (2 for a configuration mistake)."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"Parley's configuration has a mistake: {problems}.", file=sys.stderr)
        return 2
    from api.app import create_app
    from api.middleware import HeaderDeadlineProtocol

    keys = settings.api_keys
    if not keys:
        keys = [secrets.token_urlsafe(32)]
        print(
            f"\n    Parley's chat server is at http://127.0.0.1:{settings.parley_api_port}\n"
            f"    Send this API key as 'Authorization: Bearer <key>' (made for this run only; set\n"
            f"    PARLEY_API_KEYS to choose your own):\n\n        {keys[0]}\n",
            flush=True,
        )
    app = create_app(settings, keys)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.parley_api_port,
        log_level="info",
        access_log=False,
        http=HeaderDeadlineProtocol.with_header_timeout(settings.parley_api_header_timeout),
        limit_concurrency=settings.parley_api_max_connections,
    )
    server = uvicorn.Server(config)  # its Config set up the loggers: the filter goes on their handlers
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(RedactSecrets())
    requests_log = logging.StreamHandler()  # a line per request, with its x-request-id (api.middleware)
    requests_log.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    requests_log.addFilter(RedactSecrets())
    api_log = logging.getLogger("parley.api")
    api_log.setLevel(logging.INFO)
    api_log.addHandler(requests_log)
    api_log.propagate = False
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
