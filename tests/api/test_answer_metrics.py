"""Every HTTP answer counted by route, method and status; status-cache hits, misses and errors."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


def answers(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def cache(result: str) -> float:
    return REGISTRY.get_sample_value("mining_status_cache_requests_total", {"result": result}) or 0


async def test_every_route_is_counted_by_status(api: Api) -> None:
    cases = [
        ("/api/mining/click", "POST", 202),
        ("/api/mining/click", "POST", 401),
        ("/api/mining/status", "GET", 200),
        ("/healthz", "GET", 200),
        ("/api/auth/register", "POST", 400),
        ("unmatched", "GET", 404),
    ]
    before = {case: answers(*case) for case in cases}
    assert (await api.click("u1", "k1")).status_code == 202
    assert (await api.client.post("/api/mining/click")).status_code == 401
    assert (await api.client.get("/api/mining/status", headers=api.auth("u1"))).status_code == 200
    assert (await api.client.get("/healthz")).status_code == 200
    assert (
        await api.client.post(
            "/api/auth/register", content=b"{", headers={"Content-Type": "application/json"}
        )
    ).status_code == 400
    assert (await api.client.get("/no/such/route")).status_code == 404
    after = {case: answers(*case) for case in cases}
    assert {case: after[case] - before[case] for case in cases} == dict.fromkeys(cases, 1.0)
    text = (await api.client.get("/api/metrics")).text
    assert 'http_requests_total{method="POST",route="/api/mining/click",status="202"}' in text


async def test_status_cache_hits_and_misses(api: Api) -> None:
    before = {result: cache(result) for result in ("hit", "miss", "error")}
    for _ in range(3):
        answer = await api.client.get("/api/mining/status", headers=api.auth("fresh-user"))
        assert answer.status_code == 200
    after = {result: cache(result) for result in ("hit", "miss", "error")}
    assert {r: after[r] - before[r] for r in after} == {"hit": 2.0, "miss": 1.0, "error": 0.0}


async def test_status_cache_error_when_redis_is_away(
    start_api: Any, private_redis: RedisServer
) -> None:
    api: Api = await start_api(REDIS_URL=private_redis.url)
    private_redis.stop()
    before = cache("error"), cache("miss")
    answer = await api.client.get("/api/mining/status", headers=api.auth("u2"))
    assert answer.status_code == 200  # from MongoDB
    assert (cache("error") - before[0], cache("miss") - before[1]) == (1.0, 0.0)
