"""JSON responses, and JSON bodies for every error: a client always learns what is wrong."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response

log = logging.getLogger(__name__)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An expected failure with its status, a stable error code and a readable detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"error": self.code, "detail": self.detail, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def unavailable(what: str, retry_after: int = 1) -> ApiError:
    return ApiError(
        503,
        f"{what}_unavailable",
        f"{what} is unreachable; retry later with the same request.",
        {"Retry-After": str(retry_after)},
    )


async def api_error(_: HTTPConnection, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def http_error(_: HTTPConnection, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = HTTPStatus(exc.status_code)
    code = status.phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if exc.detail != status.phrase else status.description or status.phrase
    return ApiError(exc.status_code, code, detail, exc.headers).response()


async def redis_error(_: HTTPConnection, exc: Exception) -> Response:
    log.warning("redis unavailable: %s", exc)
    return unavailable("redis").response()


async def mongo_error(_: HTTPConnection, exc: Exception) -> Response:
    log.warning("mongodb unavailable: %s", exc)
    return unavailable("mongodb").response()


async def timeout_error(_: HTTPConnection, exc: Exception) -> Response:
    log.warning("dependency timed out: %r", exc)
    return unavailable("backend").response()


async def server_error(_: HTTPConnection, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", "The server failed; the failure is logged.").response()


EXCEPTION_HANDLERS = {
    ApiError: api_error,
    HTTPException: http_error,
    RedisError: redis_error,
    PyMongoError: mongo_error,
    asyncio.TimeoutError: timeout_error,
    Exception: server_error,
}


async def error_response(request: HTTPConnection, exc: Exception) -> Response:
    """The answer the handlers above give for ``exc`` (the nearest class in its MRO)."""
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)
    return await server_error(request, exc)  # pragma: no cover - Exception is in the table
