"""Liveness, readiness, the performance summary, queue statistics and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common.metrics import exposition
from crypto_mine.common.queue_reporter import AsyncQueueReporter
from crypto_mine.common.queue_stats import read_stats

from .errors import JSONResponse
from .observability import Performance
from .settings import ApiSettings

READY_TIMEOUT = 1.0


class HealthEndpoints:
    def __init__(
        self,
        settings: ApiSettings,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        performance: Performance,
        reporter: AsyncQueueReporter,
    ) -> None:
        self.reporter = reporter
        self.settings = settings
        self.redis = redis
        self.database = database
        self.performance = performance

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _check(self, name: str, probe: Any) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe, READY_TIMEOUT)
        except Exception as error:  # readiness reports any failure, whatever its kind
            return name, f"unavailable: {type(error).__name__}"
        return name, "ok"

    async def dependencies(self) -> dict[str, str]:
        checks = await asyncio.gather(
            self._check("redis", self.redis.ping()),
            self._check("mongodb", self.database.command("ping")),
        )
        return dict(checks)

    async def readyz(self, _: Request) -> Response:
        checks = await self.dependencies()
        ready = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def health(self, _: Request) -> Response:
        checks = await self.dependencies()
        queue: dict[str, Any] | None = None
        if checks["redis"] == "ok":
            queue = (await read_stats(self.redis)).to_json()
        healthy = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "checks": checks,
                "performance": self.performance.summary(),
                "queue": queue,
            }
        )

    async def queue_stats(self, _: Request) -> Response:
        return JSONResponse((await read_stats(self.redis)).to_json())

    async def metrics(self, _: Request) -> Response:
        body, content_type = exposition()
        return Response(body + await self.reporter.exposition(), media_type=content_type)
