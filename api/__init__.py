"""Parley's chat server (FastAPI): another view over the same turn runner as the pages.

The token-session websocket protocol (``POST /token``, ``GET /refresh_token``, ``WS /chat``), the
saved conversations over HTTP, and an OpenAI-compatible ``/v1``. ``python -m api`` (``make serve``)
runs it with uvicorn on 127.0.0.1:PARLEY_API_PORT.
"""
