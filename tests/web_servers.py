"""Loopback stand-ins for the web: a SearXNG-format search server and a page server, both real HTTP
servers on 127.0.0.1 (threads of the test process), each recording the requests it sees.

The pages hold made-up facts (``FACTS``), so an answer that has them came from the pages. Bad pages
(``/slow``, ``/huge``, ``/binary``, ``/empty``) and a redirect to another server
(``/redirect?to=...``) test the reader and the SSRF guard.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: Made-up facts, one per page: (path, title, the sentence holding the fact, a question about it).
FACTS = (
    (
        "/zorblax",
        "The Zorblax Festival",
        "The Zorblax Festival is held every year in the town of Quendale, where bakers build a bridge of bread.",
        "Where is the Zorblax Festival held?",
    ),
    (
        "/vintrel",
        "Vintrel river facts",
        "The Vintrel river is exactly 412 kilometres long and flows into the Amber Sea.",
        "How long is the Vintrel river?",
    ),
    (
        "/mossbeak",
        "The mossbeak bird",
        "The mossbeak is a small green bird that only sings when it rains in Pellory.",
        "When does the mossbeak sing?",
    ),
)
#: Filler prose that says nothing about the facts.
FILLER = (
    "Local news and weather for the week ahead. The library opens at nine and closes at five. "
    "Parking is free on Sundays. The council meets on the first Monday of each month. "
)


def article(title: str, sentence: str, filler_paragraphs: int = 3) -> bytes:
    """An HTML page: navigation boilerplate, then an article whose second paragraph holds ``sentence``."""
    paragraphs = [FILLER * 2, sentence + " " + FILLER, *([FILLER * 3] * filler_paragraphs)]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/about'>About</a> <a href='/contact'>Contact</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer>Copyright the example town. All rights reserved.</footer></body></html>"
    ).encode()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test output stays readable)."""

    def log_message(self, *args: object) -> None:
        """Log nothing."""


@dataclass
class Route:
    """What a path answers: status, headers, body; ``delay`` seconds before answering; ``size`` bytes
    of ``body`` repeated (a huge page, streamed)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    body: bytes = b""
    delay: float = 0.0
    size: int = 0


class PageServer:
    """A page server on a free port of 127.0.0.1 (``host`` may be another loopback address).

    Attributes:
        routes: path → Route; ``/redirect?to=<url>`` answers 302 to that URL.
        seen: the paths requested, in order.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[str] = []
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        for path, title, sentence, _ in FACTS:
            self.routes[path] = Route(body=article(title, sentence))
        self.routes["/slow"] = Route(body=article("Slow page", "This page is slow."), delay=15)
        self.routes["/huge"] = Route(
            body=article("Huge page", "The huge page starts with this fact.") * 10, size=50 * 2**20
        )
        self.routes["/binary"] = Route(
            headers={"Content-Type": "application/octet-stream"}, body=bytes(range(256)) * 64
        )
        self.routes["/empty"] = Route(
            body=b"<!doctype html><html><head><title>Empty</title></head><body></body></html>"
        )
        self.routes["/secret"] = Route(headers={"Content-Type": "text/plain"}, body=b"internal secret")

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str, host: str | None = None) -> str:
        """The URL of ``path`` here (through ``host``, e.g. ``localhost``, when given)."""
        return f"http://{host or self.host}:{self.port}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.seen.append(parts.path)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route = server.routes.get(parts.path, Route(status=404, body=b"not found"))
                time.sleep(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                size = route.size or len(route.body)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    sent = 0
                    while sent < size:
                        piece = route.body[: size - sent]
                        self.wfile.write(piece)
                        sent += len(piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader stopped at its limit

        return Handler

    def start(self) -> PageServer:
        """Serve in a daemon thread; returns this server."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


class SearxngServer(PageServer):
    """A search server answering SearXNG's JSON API (``GET /search?q=…&format=json``) with
    ``results`` (a list of ``{"url", "title", "content"}``), whatever the query.

    Attributes:
        results: what every search answers.
        queries: the queries asked, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, str]] = []
        self.queries: list[str] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path != "/search" or query.get("format") != ["json"]:
                    self.send_response(403)  # SearXNG refuses formats its settings do not list
                    self.end_headers()
                    return
                server.queries.append(query.get("q", [""])[0])
                body = json.dumps({"query": query.get("q", [""])[0], "results": server.results}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    @property
    def base_url(self) -> str:
        """The instance's URL, as SEARXNG_URL takes it."""
        return f"http://127.0.0.1:{self.port}"


def results_for(pages: PageServer, *paths: str) -> list[dict[str, str]]:
    """SearXNG results for ``paths`` on ``pages``, titled as the pages are."""
    titles = {path: title for path, title, _, _ in FACTS}
    return [{"url": pages.url(p), "title": titles.get(p, p.strip("/").title() or "Page"), "content": ""} for p in paths]
