"""Load shedding: beyond MAX_REQUESTS_IN_FLIGHT, 503 overloaded at once; probes never shed."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send

from crypto_mine.api.http.observability import Performance
from crypto_mine.api.http.shedding import Shedding
from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


class Held:
    """An application whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered: list[str] = []
        self.changed = asyncio.Condition()

    async def until_entered(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.entered) >= count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.changed:
            self.entered.append(scope["path"])
            self.changed.notify_all()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def shed_total() -> float:
    return REGISTRY.get_sample_value("mining_api_requests_shed_total") or 0


async def test_the_excess_is_503_at_once_and_the_rest_completes() -> None:
    held = Held()
    app = Shedding(held, budget=3, performance=Performance())
    shed = shed_total()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        waiting = [asyncio.ensure_future(c.post("/api/mining/click")) for _ in range(3)]
        await held.until_entered(3)
        excess = await c.post("/api/mining/click")  # answered while the three wait
        assert excess.status_code == 503
        assert excess.json()["error"] == "overloaded"
        assert excess.headers["Retry-After"] == "1"
        assert not any(task.done() for task in waiting)
        assert shed_total() == shed + 1
        probes = ["/healthz", "/readyz", "/api/health", "/api/metrics"]
        waiting += [asyncio.ensure_future(c.get(probe)) for probe in probes]
        await held.until_entered(7)  # taken, however busy
        assert held.entered[3:] == probes
        held.release.set()
        assert [task.status_code for task in await asyncio.gather(*waiting)] == [200] * 7
        assert (await c.post("/api/mining/click")).status_code == 200  # room again


async def test_the_api_sheds_in_front_of_everything(
    start_api: Any, private_redis: RedisServer
) -> None:
    """A click waiting on a hung Redis holds the only place: the next request, of any route
    but the probes, is answered 503 at once; once Redis is back, requests are taken again."""
    api: Api = await start_api(
        REDIS_URL=private_redis.url, MAX_REQUESTS_IN_FLIGHT=1, REDIS_SOCKET_TIMEOUT=5
    )
    assert (await api.click("u1", "warm")).status_code == 202
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        hung = asyncio.ensure_future(api.click("u1", "a"))
        await asyncio.sleep(0.3)
        shed = await api.client.get("/api/mining/status", headers=api.auth("u1"))
        assert (shed.status_code, shed.json()["error"]) == (503, "overloaded")
        assert (await api.client.get("/healthz")).status_code == 200
        assert not hung.done()
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    assert (await hung).status_code == 202
    assert (await api.click("u1", "b")).status_code == 202
