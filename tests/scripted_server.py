"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests where the real model's own
choices would make a test flaky (which tool it calls, with what arguments) and for benchmarks that
need a backend with a fixed, remote-like pace.

Each chat-completion request is answered with the next step of the script (the last step repeats):
``Say("text")`` streams or returns text, one word a token (cut at the request's ``max_tokens``, with
``finish_reason: "length"``); ``Call("name", '{"json": "arguments"}')`` returns one tool call, as
OpenAI streams it (the call in the first chunk, its arguments in pieces, then ``finish_reason:
"tool_calls"``). Usage counts words; a stream with ``stream_options.include_usage`` ends with a
usage chunk. ``bodies`` keeps every request body, so a test can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.fault_server import _LoopbackServer


@dataclass(frozen=True)
class Say:
    """A step that answers with ``text`` (streamed word by word); ``cut`` when max_tokens ended it."""

    text: str
    cut: bool = False


@dataclass(frozen=True)
class Call:
    """A step that answers with one call of tool ``name`` with the JSON text ``arguments``."""

    name: str
    arguments: str


class ScriptedServer(_LoopbackServer):
    """Start with ``ScriptedServer([...]).start()``; ``stop()`` at the end.

    Args:
        script: the steps, one per request; the last one repeats.
        first_token_delay: seconds before the first chunk of a streamed answer.
        tokens_per_second: pace of a streamed answer's chunks (one word each); 0 sends them at once.
    """

    def __init__(
        self, script: list[Say | Call], first_token_delay: float = 0.0, tokens_per_second: float = 0.0
    ) -> None:
        self.script = list(script)
        self.first_token_delay, self.tokens_per_second = first_token_delay, tokens_per_second
        self._lock = threading.Lock()
        self._step = 0
        self._serve()

    def play(self, script: list[Say | Call]) -> ScriptedServer:
        """Answer the next requests with ``script`` (from its first step), forgetting what was sent."""
        with self._lock:
            self.script, self._step = list(script), 0
            self.bodies.clear()
        return self

    def next_step(self, body: dict) -> Say | Call:
        """Record ``body`` and return the step that answers it."""
        with self._lock:
            self.bodies.append(body)
            step = self.script[min(self._step, len(self.script) - 1)]
            self._step += 1
            return step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._json({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                step = cut(scripted.next_step(body), body.get("max_tokens"))
                if body.get("stream"):
                    self._stream(step, body)
                else:
                    self._json(completion(step, body))

            def _stream(self, step: Say | Call, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(scripted.first_token_delay)
                pause = 1 / scripted.tokens_per_second if scripted.tokens_per_second else 0.0
                for delta, finish in stream_deltas(step):
                    self._write(chunk(delta, finish))
                    if pause and finish is None:
                        time.sleep(pause)
                if (body.get("stream_options") or {}).get("include_usage"):
                    self._write(usage_chunk(usage(step, body)))
                self._write(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _write(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


def cut(step: Say | Call, max_tokens: int | None) -> Say | Call:
    """``step`` with its text cut to ``max_tokens`` words (marked ``cut``)."""
    if isinstance(step, Say) and max_tokens and len(step.text.split(" ")) > max_tokens:
        return Say(" ".join(step.text.split(" ")[:max_tokens]), cut=True)
    return step


def usage(step: Say | Call, body: dict) -> dict:
    """Usage in words: of the request's messages, and of the answer."""
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    answer = len(step.text.split()) if isinstance(step, Say) else len(step.arguments.split())
    return {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer}


def completion(step: Say | Call, body: dict) -> dict:
    """The non-streamed answer of a step, as OpenAI's chat.completion."""
    if isinstance(step, Say):
        message: dict = {"role": "assistant", "content": step.text}
        finish = "length" if step.cut else "stop"
    else:
        call = {"id": "call_scripted", "type": "function", "function": {"name": step.name, "arguments": step.arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage(step, body),
    }


def stream_deltas(step: Say | Call) -> list[tuple[dict, str | None]]:
    """The deltas of a streamed step, each with its finish reason (None but for the last)."""
    if isinstance(step, Say):
        words = step.text.split(" ")
        deltas = [{"role": "assistant", "content": words[0]}] + [{"content": " " + w} for w in words[1:]]
        return [(d, None) for d in deltas] + [({}, "length" if step.cut else "stop")]
    head = {"index": 0, "id": "call_scripted", "type": "function", "function": {"name": step.name, "arguments": ""}}
    half = len(step.arguments) // 2
    pieces = [step.arguments[:half], step.arguments[half:]]
    deltas: list[tuple[dict, str | None]] = [({"role": "assistant", "content": None, "tool_calls": [head]}, None)]
    deltas += [({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}, None) for p in pieces]
    return [*deltas, ({}, "tool_calls")]


def usage_chunk(counted: dict) -> bytes:
    """The last event of a stream asked with ``include_usage``: no choices, the usage."""
    data = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": "scripted"}
    return f"data: {json.dumps({**data, 'choices': [], 'usage': counted})}\n\n".encode()


def chunk(delta: dict, finish: str | None) -> bytes:
    """One ``chat.completion.chunk`` server-sent event."""
    data = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()
