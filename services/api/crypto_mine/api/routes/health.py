"""Liveness, readiness, the performance summary, queue statistics and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from redis.exceptions import ResponseError
from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common.metrics import exposition
from crypto_mine.pipeline.queue_reporter import AsyncQueueReporter, queue_exposition
from crypto_mine.pipeline.queue_stats import QueueStats, read_all

from ..admission.shards import Shards
from ..http.errors import JSONResponse
from ..http.observability import Performance
from ..settings import ApiSettings
from .openapi_parts import UNAVAILABLE, Paths, json_answer, ref
from .redis_safety import UnsafeRedis, check_no_eviction, durability

log = logging.getLogger(__name__)

READY_TIMEOUT = 1.0


class HealthEndpoints:
    def __init__(
        self,
        settings: ApiSettings,
        shards: Shards,
        database: AsyncDatabase[dict[str, Any]],
        performance: Performance,
        reporters: list[AsyncQueueReporter],
    ) -> None:
        self.reporters = reporters
        self.settings = settings
        self.shards = shards
        self.redis = shards.first.redis
        self.database = database
        self.performance = performance

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _check(self, name: str, probe: Any) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe, READY_TIMEOUT)
        except UnsafeRedis as error:
            log.error("not ready: %s", error)
            return name, f"unsafe: {error}"
        except Exception as error:  # readiness reports any failure, whatever its kind
            log.warning("%s not ready: %r", name, error)
            return name, "unavailable"
        return name, "ok"

    async def dependencies(self) -> dict[str, str]:
        redis = [check_no_eviction(client) for client in self.shards.clients]
        checks = await asyncio.gather(
            *(self._check("redis", probe) for probe in redis),
            self._check("mongodb", self.database.command("ping")),
        )
        worst = next((state for name, state in checks if name == "redis" and state != "ok"), "ok")
        return {"redis": worst, "mongodb": checks[-1][1]}

    async def readyz(self, _: Request) -> Response:
        """Ready when what taking clicks needs answers: Redis, and MongoDB only in sync mode.

        With the queue, a MongoDB outage leaves the api in its Service: clicks queue and are
        applied when MongoDB returns (sign-up, login and balance reads on a cache miss answer
        503 meanwhile); the checks still report MongoDB's state.
        """
        checks = await self.dependencies()
        needed = ("redis",) if self.settings.admission.use_queue else ("redis", "mongodb")
        ready = all(checks[name] == "ok" for name in needed)
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def health(self, _: Request) -> Response:
        """``/api/health`` and ``/health`` (the scaling guide's path): the performance summary.

        Carries the guide's field names: ``performance.avgResponseTime`` (ms), ``errorRate``,
        ``totalRequests``; ``queue.pending`` (clicks waiting) and ``queue.workers``.
        """
        checks = await self.dependencies()
        queue: dict[str, Any] | None = None
        redis: dict[str, Any] | None = None
        if checks["redis"] != "unavailable":
            stats = await self._stats()
            queue = {**stats.to_json(), "pending": stats.depth}
            with contextlib.suppress(ResponseError):  # INFO refused by an ACL
                redis = await durability(self.redis)
        healthy = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "checks": checks,
                "performance": self.performance.summary(),
                "queue": queue,
                "redis": redis,
            }
        )

    async def _stats(self) -> QueueStats:
        return await read_all([(shard.redis, shard.index) for shard in self.shards.all])

    async def queue_stats(self, _: Request) -> Response:
        return JSONResponse((await self._stats()).to_json())

    async def metrics(self, _: Request) -> Response:
        body, content_type = exposition()
        return Response(body + await queue_exposition(self.reporters), media_type=content_type)


OPENAPI: Paths = {
    "/api/queue/stats": {
        "get": {
            "summary": "Click queue statistics",
            "responses": {"200": json_answer(ref("QueueStats"), "Statistics."), "503": UNAVAILABLE},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness",
            "responses": {"200": json_answer({"type": "object"}, "Alive.")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: Redis reachable (and MongoDB with USE_QUEUE=false)",
            "responses": {
                "200": json_answer(ref("Readiness"), "Ready."),
                "503": json_answer(ref("Readiness"), "Not ready."),
            },
        }
    },
    "/api/health": {
        "get": {
            "summary": "Performance summary of this process, dependencies and queue",
            "responses": {"200": json_answer(ref("Health"), "Summary.")},
        }
    },
    "/health": {
        "get": {
            "summary": "The same as /api/health (the scaling guide's path)",
            "responses": {"200": json_answer(ref("Health"), "Summary.")},
        }
    },
    "/api/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}
