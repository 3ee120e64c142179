"""The operator's liveness endpoint while it stands by or leads (kopf's own serves only a
running kopf): 200 while ``healthy()`` says so, else 503."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web


class HealthServer:
    def __init__(self, endpoint: str, healthy: Callable[[], bool]) -> None:
        parts = urlsplit(endpoint)
        if parts.port is None or not parts.hostname:
            raise ValueError(f"LIVENESS_ENDPOINT {endpoint!r} names no host and port")
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/healthz"
        self.healthy = healthy
        self._runner: web.AppRunner | None = None

    async def start(self) -> HealthServer:
        app = web.Application()
        app.router.add_get(self.path, self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, _: web.Request) -> web.Response:
        if self.healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unhealthy"}, status=503)
