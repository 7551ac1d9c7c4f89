"""The chat server's ASGI middleware: the request-size limit (``BodyLimit``)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, and no more of it is read.

    The body is read here first (at most ``limit`` bytes are kept), then handed to the app as it was.

    Args:
        app: the app it wraps.
        limit: PARLEY_API_MAX_BODY, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
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

    async def _refuse(self, send: Send) -> None:
        sentence = f"The request body is larger than this server accepts ({self.limit:,} bytes, PARLEY_API_MAX_BODY)."
        body = json.dumps(error_body(413, sentence, "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
