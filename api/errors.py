"""Errors of the chat server: one JSON shape everywhere, OpenAI's ``{"error": {"message", "type", "code"}}``,
with a sentence a person understands as the message and never a traceback."""

from __future__ import annotations

import logging

import openai
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.streaming import RETRY_AFTER_SECONDS, Busy
from controller.errors import ChatError
from controller.queue import QueueError
from model.store import StoreError
from utils.provider_errors import ProviderConfigError

log = logging.getLogger("parley.api")

#: OpenAI's error ``type`` for each status code Parley answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "provider_error",
    503: "provider_unavailable",
    504: "provider_timeout",
}


class APIError(Exception):
    """A request that Parley answers with an error.

    Args:
        status: the HTTP status code.
        message: one sentence for the client.
        code: a short machine-readable code (OpenAI's ``code``), e.g. ``model_not_found``.
        headers: extra response headers (e.g. ``Retry-After``).
        param: the request field at fault (OpenAI's ``param``), or None.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.param = param


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """OpenAI's error JSON (its ``ErrorResponse``): ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    """The JSON response for ``error``."""
    body = error_body(error.status, error.message, error.code, error.param)
    return JSONResponse(body, error.status, headers=error.headers)


def from_chat_error(exc: ChatError) -> APIError:
    """Map a failed turn to a status: 400 for a message the model cannot take (too long), 503 when
    the provider is not configured or cannot be reached, 504 on a timeout, 502 for other provider
    failures. The message is the sentence the page shows."""
    cause = exc.__cause__
    if exc.refused_text is not None:
        return APIError(400, str(exc), "message_refused")
    if exc.web_failed:
        return APIError(502, str(exc), "web_search_failed")
    if isinstance(cause, ProviderConfigError):
        return APIError(503, str(exc), "provider_not_configured")
    if isinstance(cause, openai.APITimeoutError):
        return APIError(504, str(exc), "provider_timeout")
    if isinstance(cause, (openai.APIConnectionError, openai.RateLimitError)):
        return APIError(503, str(exc), "provider_unavailable")
    return APIError(502, str(exc), "provider_error")


def from_exception(exc: BaseException) -> APIError:
    """Map what a turn or a store action raised to an APIError (an unexpected error becomes a 500
    whose message says nothing of Parley's insides; the details go to the server's log)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ChatError):
        return from_chat_error(exc)
    if isinstance(exc, Busy):
        return APIError(429, str(exc), "too_many_requests", {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, StoreError):
        return APIError(503, str(exc), "store_unavailable")
    if isinstance(exc, QueueError):
        return APIError(504, str(exc), "no_worker")
    if isinstance(exc, redis.RedisError):
        return APIError(
            503,
            f"Parley's Redis is not reachable right now ({_first_line(exc)}); chat tokens and queued turns need it. "
            "Try again shortly.",
            "redis_unavailable",
        )
    log.exception("unexpected error in a request", exc_info=exc)
    return APIError(500, "Something went wrong inside Parley; the server's log has the details.", "internal_error")


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without a final period."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def _validation_sentence(exc: RequestValidationError) -> str:
    """One sentence from pydantic's validation errors, naming each field and what is wrong."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "the request body"
        parts.append(f"{where}: {error.get('msg', 'is not valid')}")
    return "The request is not valid (" + "; ".join(parts) + ")."


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in OpenAI's error JSON (validation errors as 400, as OpenAI does)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        field = ".".join(str(p) for p in first if p != "body") or None
        return error_response(APIError(400, _validation_sentence(exc), "invalid_request", param=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "There is nothing at this address.", 405: "This address does not take that method."}
        text = message.get(exc.status_code, str(exc.detail))
        return error_response(APIError(exc.status_code, text, None, dict(exc.headers or {})))

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> JSONResponse:
        return error_response(from_exception(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(from_exception(exc))
