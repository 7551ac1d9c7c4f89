"""A small OpenAI chat-completions server for failure tests, bound to 127.0.0.1.

Modes: ``ok`` (a normal streamed reply), ``401``, ``429`` (with ``retry_after`` seconds),
``500``, ``stall`` (answers nothing for ``stall_seconds``), ``cut`` (a stream cut off mid-reply)
and ``context`` (400: the prompt exceeds the context window, as llama.cpp words it).
``attempts`` counts the chat-completion requests it received. ``RecordingProxy`` forwards to a
real server and records what it was sent.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = ["Hello", " from", " the", " fault", " server."]


def _chunk(content: str, finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fault",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


class _LoopbackServer:
    """A threaded HTTP server on a free port of 127.0.0.1 whose API root is ``/v1`` (or ``path``)."""

    path = "/v1"

    def _serve(self) -> None:
        self.bodies: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def start(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FaultServer(_LoopbackServer):
    """Start with ``FaultServer().start()``; set ``mode`` at any time; ``stop()`` at the end."""

    def __init__(self, mode: str = "ok", retry_after: float | None = 1, stall_seconds: float = 5) -> None:
        self.mode = mode
        self.retry_after = retry_after
        self.stall_seconds = stall_seconds
        self.attempts = 0
        self._lock = threading.Lock()
        self._serve()

    def _handler(self):
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._json(
                    200, {"object": "list", "data": [{"id": "fault-model", "object": "model", "owned_by": "tests"}]}
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fault._lock:
                    fault.attempts += 1
                    fault.bodies.append(body)
                mode = fault.mode
                if mode == "401":
                    self._json(
                        401,
                        {
                            "error": {
                                "message": "Invalid API Key",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                elif mode == "429":
                    headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
                    self._json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, headers)
                elif mode == "500":
                    self._json(500, {"error": {"message": "Internal error", "type": "server_error"}})
                elif mode == "context":
                    self._json(
                        400,
                        {
                            "error": {
                                "message": "Requested tokens (9000) exceed context window of 4096",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                elif mode == "stall":
                    time.sleep(fault.stall_seconds)
                    self._json(500, {"error": {"message": "too late"}})
                else:
                    self._stream(cut=mode == "cut")

            def _stream(self, cut: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces = REPLY[:2] if cut else REPLY
                for piece in pieces:
                    self._write_chunk(_chunk(piece))
                    time.sleep(0.05)
                if cut:  # drop the connection without the final chunk: an incomplete chunked read
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._write_chunk(_chunk("", "stop"))
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


class RecordingProxy(_LoopbackServer):
    """An HTTP proxy on 127.0.0.1 in front of a real OpenAI-compatible server (the local model):
    forwards every request as it is, streams the answer back, and keeps each JSON request body in
    ``bodies``, so a test can check what the model was sent."""

    def __init__(self, target_base_url: str) -> None:
        self.target = urllib.parse.urlsplit(target_base_url)
        self.path = self.target.path
        self._serve()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if body:
                    proxy.bodies.append(json.loads(body))
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(method, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := answer.read1(65536):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                upstream.close()

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        return Handler
