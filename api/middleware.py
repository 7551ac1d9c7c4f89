"""The chat server's edges: ASGI middleware for the request-size limit (``BodyLimit``), the request id
and its log line (``RequestId``) and ``HEAD`` (``HeadAsGet``); and the deadline for a request's head
(``HeaderDeadlineProtocol``, uvicorn's protocol for each connection).

The Host check is Starlette's ``TrustedHostMiddleware`` (``api.app``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.errors import error_body

log = logging.getLogger("parley.api")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, and no more of it is read.

    The body is read here first (at most ``limit`` bytes are kept), then handed to the app as it was.

    Args:
        app: the app it wraps.
        limit: PARLEY_API_MAX_BODY, in bytes.
        larger: paths that take larger bodies (a recording to transcribe), with their limits in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app, self.default, self.larger = app, limit, dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        where = "PARLEY_API_MAX_BODY" if limit == self.default else "the most a recording may be"
        sentence = f"The request body is larger than this server accepts ({limit:,} bytes, {where})."
        body = json.dumps(error_body(413, sentence, "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request line and headers: a connection that
    has not sent a whole request head within ``header_timeout`` seconds of opening (or of its last
    response) is closed. uvicorn has no header timeout of its own, so without this, clients that
    send a request slowly, a byte at a time or never finishing it (slowloris), hold connections
    open for as long as they like.

    Set ``header_timeout`` on the class (``with_header_timeout``); uvicorn makes one protocol
    object per connection.
    """

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_header_timeout(cls, seconds: float) -> type[HeaderDeadlineProtocol]:
        """This protocol with a deadline of ``seconds`` (PARLEY_API_HEADER_TIMEOUT)."""
        return type("HeaderDeadlineProtocol", (cls,), {"header_timeout": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: the deadline for its first request head starts now."""
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        """Parse what arrived; once a request head is complete, its deadline is met."""
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        """A response went out: the next request on this connection gets a new deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed: no deadline to keep."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class RequestId:
    """ASGI middleware: every HTTP response carries an ``x-request-id`` (the client's own, when it
    sent a safe one, else a new one), and one log line per request names it with the method, the path
    (never the query string, which may carry a chat token), the status and the time taken.

    Args:
        app: the app it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")
        request_id = given.decode("latin-1") if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
        started, status = time.monotonic(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            took = (time.monotonic() - started) * 1000
            log.info("%s %s %s %d %.0f ms", request_id, scope["method"], scope["path"], status, took)


#: A request id a client may choose: letters, digits, ``-`` and ``_``, at most 128.
_SAFE_ID = re.compile(rb"[A-Za-z0-9_-]{1,128}")


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request is answered as the ``GET`` of the same address, without
    the body (FastAPI's routes answer only the methods they name).

    Args:
        app: the app it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)
