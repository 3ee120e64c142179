"""HTTP interface: ``POST /v1/ids``, ``/healthz``, ``/readyz``, ``/health`` (metrics: ``__main__``).

``POST /v1/ids`` answers only callers that present the service token
(``Authorization: Bearer <ID_ALLOCATOR_TOKEN>``, compared in constant time): anyone else who
reaches the port could burn up to 10,000 ids a call and learn the next user id. The probes
need no token: ``/healthz`` (liveness) allocates nothing; ``/health`` is the user-id guide's
check, which generates one id to prove generation works (each call uses up an id: a gap in user
ids). Metrics are served on a port of their own (``ID_METRICS_PORT``), which the chart opens to the
monitoring namespace only.

Every 4xx/5xx answer is a JSON body ``{"error": <code>, "detail": <text>}``; no stack trace ever
reaches a client.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import pymongo
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crypto_mine.common.mongo import Document, async_mongo_client, primary
from crypto_mine.common.names import Collections

from . import metrics
from .counter import Counter, CounterUnavailable, IdRange
from .segments import SegmentAllocator
from .settings import MAX_COUNT, SEGMENT, AllocatorSettings
from .strict import StrictAllocator

log = logging.getLogger(__name__)

_COUNT = re.compile(r"[0-9]{1,9}")


class Allocator(Protocol):
    mode: str

    @property
    def available(self) -> int: ...

    async def start(self, wait: float) -> None: ...

    async def close(self) -> None: ...

    async def allocate(self, count: int) -> list[IdRange]: ...


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    /,
    **extra: Any,
) -> Response:
    body = {"error": code, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class Service:
    settings: AllocatorSettings
    client: AsyncMongoClient[Document]
    counter: Counter
    allocator: Allocator


def build_service(settings: AllocatorSettings) -> Service:
    client = async_mongo_client(settings.mongo)
    # The counter's reads decide its next write: from the primary only.
    collection = primary(client[settings.mongo.database][Collections.counters])
    counter = Counter(collection, settings.counter_name, settings.start, settings.retry)
    allocator: Allocator
    if settings.mode == SEGMENT:
        allocator = SegmentAllocator(counter, settings.segments)
    else:
        allocator = StrictAllocator(counter)
    return Service(settings, client, counter, allocator)


def parse_count(request: Request) -> int | str:
    """The requested count, or the reason it is not acceptable."""
    values = request.query_params.getlist("count")
    if len(values) > 1:
        return "count must be given at most once"
    if not values:
        return 1
    raw = values[0]
    if not _COUNT.fullmatch(raw) or not 1 <= int(raw) <= MAX_COUNT:
        return f"count must be an integer from 1 to {MAX_COUNT}, got {raw[:40]!r}"
    return int(raw)


def authorized(request: Request, token: str) -> bool:
    presented = request.headers.get("authorization", "")
    return hmac.compare_digest(presented.encode(), f"Bearer {token}".encode())


async def generate(service: Service, count: int) -> list[IdRange]:
    """``count`` new ids, counted in the metrics whether they come or not."""
    try:
        ranges = await service.allocator.allocate(count)
    except Exception:
        metrics.generation_errors.inc()
        raise
    metrics.ids_issued.labels(service.allocator.mode).inc(count)
    metrics.generated.inc(count)
    return ranges


def unavailable(service: Service, **extra: Any) -> Response:
    return error(
        503,
        "unavailable",
        "the id counter could not be reached; retry later",
        {"Retry-After": str(service.settings.retry_after_seconds)},
        **extra,
    )


async def allocate_ids(request: Request) -> Response:
    service: Service = request.app.state.service
    if not authorized(request, service.settings.token):
        metrics.requests.labels("unauthorized").inc()
        return error(
            401,
            "unauthorized",
            "a valid service token is required (Authorization: Bearer)",
            {"WWW-Authenticate": "Bearer"},
        )
    count = parse_count(request)
    if isinstance(count, str):
        metrics.requests.labels("bad_request").inc()
        return error(400, "invalid_count", count)
    try:
        ranges = await generate(service, count)
    except CounterUnavailable as exc:
        metrics.requests.labels("unavailable").inc()
        log.warning("ids not allocated: %s", exc)
        return unavailable(service)
    ids = [i for segment in ranges for i in segment.ids()]
    metrics.requests.labels("ok").inc()
    return JSONResponse(
        {"ids": ids, "ranges": [[segment.first, segment.last] for segment in ranges]}
    )


async def health(request: Request) -> Response:
    """The user-id guide's health check: generate one id, say so."""
    service: Service = request.app.state.service
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        [segment] = await generate(service, 1)
    except CounterUnavailable as exc:
        log.warning("health check generated no id: %s", exc)
        return unavailable(
            service, status="unhealthy", timestamp=timestamp, user_id_generation="failing"
        )
    return JSONResponse(
        {
            "status": "healthy",
            "timestamp": timestamp,
            "user_id_generation": "working",
            "test_id": str(segment.first),
        },
        headers={"Cache-Control": "no-store"},
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        with pymongo.timeout(service.settings.retry.attempt_timeout):
            await service.client.admin.command("ping")
    except PyMongoError as exc:
        log.warning("not ready: MongoDB ping failed: %s", exc)
        return error(503, "not_ready", "MongoDB did not answer a ping")
    return JSONResponse({"status": "ready", "mode": service.allocator.mode})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(exc.status_code, code, str(exc.detail), exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    metrics.requests.labels("error").inc()
    return error(500, "internal", "internal error")


def create_app(settings: AllocatorSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = build_service(settings)
        app.state.service = service
        await service.allocator.start(wait=settings.retry.attempt_timeout)
        log.info(
            "id allocator ready: mode=%s counter=%s start=%s",
            settings.mode,
            settings.counter_name,
            settings.start,
        )
        try:
            yield
        finally:
            await service.allocator.close()
            await service.client.close()

    return Starlette(
        routes=[
            Route("/v1/ids", allocate_ids, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
