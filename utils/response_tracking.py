"""Response tracking for Stop: every provider HTTP response is remembered in the thread that
opened it, so that the thread reading a streamed reply can close its connection when the user stops.

Closing the connection is what makes a server stop generating (llama-cpp-python's server logs
"Disconnected from client"). Closing the generators above the openai SDK's stream is not enough:
the SDK's ``Stream`` refers to itself (a reference cycle), so its response stays open until the
garbage collector finds it.
"""

from __future__ import annotations

import threading

import httpx

_opened = threading.local()  # per thread: the provider HTTP responses it opened


def _track(response: httpx.Response) -> None:
    """httpx response hook: remember ``response`` in the thread that made the request (which is the
    thread that reads a streamed reply), forgetting the ones already closed."""
    responses: list[httpx.Response] | None = getattr(_opened, "responses", None)
    if responses is None:
        responses = _opened.responses = []
    responses[:] = [r for r in responses if not r.is_closed]
    responses.append(response)


def close_open_responses() -> int:
    """Close every provider HTTP response this thread opened and has not closed yet.

    Returns:
        the number of responses closed.
    """
    responses: list[httpx.Response] = getattr(_opened, "responses", [])
    open_ones = [r for r in responses if not r.is_closed]
    for response in open_ones:
        response.close()
    responses.clear()
    return len(open_ones)


def tracked_http_client() -> httpx.Client:
    """An HTTP client like the openai SDK's default (same connection limits, redirects followed),
    whose responses are tracked per thread (``close_open_responses``)."""
    return httpx.Client(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        follow_redirects=True,
        event_hooks={"response": [_track]},
    )
