"""OpenAI conformance for Parley's /v1: every answer is checked against OpenAI's published schemas
(``tests/openai_schemas.json``), and ``ValidatingProxy`` sits between any client and Parley so
that every answer a client test gets is checked, streamed chunks included."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from functools import cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.fault_server import _LoopbackServer

SCHEMAS = Path(__file__).with_name("openai_schemas.json")


@cache
def _document() -> dict[str, Any]:
    return json.loads(SCHEMAS.read_text(encoding="utf-8"))


def problems(schema: str, instance: Any) -> list[str]:
    """Why ``instance`` does not validate against OpenAI's schema ``schema`` ([] when it does)."""
    root = {**_document(), "$ref": f"#/components/schemas/{schema}"}
    return [
        f"{schema}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(root).iter_errors(instance)
    ]


def schema_for(path: str, status: int, streamed: bool) -> str | None:
    """The schema an answer to ``path`` must follow, or None when OpenAI's has none (not a /v1 path)."""
    if status >= 400:
        return "ErrorResponse"
    if path.endswith("/chat/completions"):
        return "CreateChatCompletionStreamResponse" if streamed else "CreateChatCompletionResponse"
    if path.endswith("/models"):
        return "ListModelsResponse"
    if "/models/" in path:
        return "Model"
    return None


class ValidatingProxy(_LoopbackServer):
    """An HTTP proxy on 127.0.0.1 in front of Parley's chat server: forwards every request, and checks
    every /v1 answer (each event of a stream) against OpenAI's schemas; ``failures`` lists what did
    not validate and ``checked`` counts what was checked."""

    def __init__(self, target_url: str) -> None:
        self.target = urllib.parse.urlsplit(target_url)
        self.path = "/v1"
        self.failures: list[str] = []
        self.checked = 0
        self._serve()

    def check(self, path: str, status: int, body: bytes, streamed: bool) -> None:
        """Validate one answer (a JSON body, or a stream of ``data:`` events)."""
        schema = schema_for(path, status, streamed)
        if schema is None:
            return
        if not streamed:
            self.checked += 1
            self.failures += problems(schema, json.loads(body))
            return
        for line in body.decode("utf-8").splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                self.checked += 1
                self.failures += problems("ErrorResponse" if "error" in event else schema, event)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(method, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                streamed = "text/event-stream" in (answer.getheader("content-type") or "")
                if method != "HEAD":  # a HEAD answer has no body to check
                    proxy.check(urllib.parse.urlsplit(self.path).path, answer.status, data, streamed)
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", answer.getheader("content-length") or str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

        return Handler
