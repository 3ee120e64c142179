"""The general limit: every /api/* route per client IP, with RateLimit headers and 429 +
Retry-After; the click status endpoint answers 429 like the documents say; health and metrics
are never limited; the click itself keeps its own buckets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio

StartApi = Any


def remaining(response: httpx.Response) -> int:
    policy, _, rest = response.headers["RateLimit"].partition(";")
    assert policy == '"api"'
    fields = dict(item.split("=") for item in rest.split(";"))
    return int(fields["r"])


async def limited(start_api: StartApi, limit: int = 5, window: int = 60, **env: Any) -> Api:
    api: Api = await start_api(API_RATE_LIMIT=limit, API_RATE_LIMIT_WINDOW=window, **env)
    return api


async def test_every_api_route_counts_until_429(start_api: StartApi) -> None:
    api = await limited(start_api)
    auth = api.auth("u1")
    answers = [
        await api.client.get("/api/mining/status", headers=auth),
        await api.client.get("/api/queue/stats"),
        await api.client.get("/api/mobile-app/apk"),
        await api.client.get("/api/mining/click/status", params={"key": "k"}, headers=auth),
        await api.client.post("/api/auth/login", json={"username": "nobody", "password": "x"}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 400]
    assert [remaining(a) for a in answers] == [4, 3, 2, 1, 0]
    for answer in answers:
        assert answer.headers["RateLimit-Policy"] == '"api";q=5;w=60'
        assert "Retry-After" not in answer.headers

    refused = await api.client.get("/api/mining/status", headers=auth)
    assert refused.status_code == 429
    body = refused.json()
    assert (body["error"], body["limit"]) == ("rate_limited", "api")
    assert "5 requests per 60 s" in body["detail"]
    assert remaining(refused) == 0
    # One token comes back every 12 s.
    assert 10 <= int(refused.headers["Retry-After"]) <= 12
    assert refused.headers["RateLimit-Policy"] == '"api";q=5;w=60'


async def test_the_click_status_endpoint_answers_429(start_api: StartApi) -> None:
    api = await limited(start_api, limit=2)
    assert (await api.click("u1", "k1")).status_code == 202
    assert [(await api.status("u1", "k1")).status_code for _ in range(2)] == [202, 202]
    throttled = await api.status("u1", "k1")
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "rate_limited"
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_health_metrics_and_clicks_are_not_counted(start_api: StartApi) -> None:
    api = await limited(start_api, limit=2)
    for path in ("/api/health", "/health", "/api/metrics", "/healthz", "/readyz", "/"):
        for _ in range(4):
            answer = await api.client.get(path)
            assert answer.status_code == 200, path
            assert "RateLimit" not in answer.headers, path
    clicks = [await api.click("u1", f"k{i}") for i in range(6)]
    assert {c.status_code for c in clicks} == {202}
    assert all(c.headers["RateLimit"].startswith('"user"') for c in clicks)  # its own buckets
    after = await api.client.get("/api/queue/stats")
    assert after.status_code == 200
    assert remaining(after) == 1


async def test_each_client_ip_has_its_own_bucket_across_replicas(start_api: StartApi) -> None:
    api = await limited(start_api, limit=3, TRUSTED_PROXY_COUNT=1)
    other_replica = await limited(start_api, limit=3, TRUSTED_PROXY_COUNT=1)

    async def get(replica: Api, ip: str) -> int:
        answer = await replica.client.get("/api/queue/stats", headers={"X-Forwarded-For": ip})
        return answer.status_code

    assert [await get(api, "192.0.2.1") for _ in range(2)] == [200, 200]
    assert await get(other_replica, "192.0.2.1") == 200  # the same bucket, in Redis
    assert await get(other_replica, "192.0.2.1") == 429
    assert await get(api, "192.0.2.1") == 429
    assert [await get(api, "192.0.2.2") for _ in range(3)] == [200, 200, 200]


async def test_tokens_come_back_at_the_configured_rate(start_api: StartApi) -> None:
    api = await limited(start_api, limit=2, window=1)  # 2 per second
    assert [(await api.client.get("/api/queue/stats")).status_code for _ in range(2)] == [200] * 2
    refused = await api.client.get("/api/queue/stats")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    began = time.monotonic()
    while (await api.client.get("/api/queue/stats")).status_code == 429:
        assert time.monotonic() - began < 3, "no token came back"
        await asyncio.sleep(0.05)
    # A token takes 0.5 s to come back; refused requests took none.
    assert 0.2 < time.monotonic() - began < 1.5


async def test_zero_turns_the_limit_off(start_api: StartApi) -> None:
    api = await limited(start_api, limit=0)
    for _ in range(3):
        answer = await api.client.get("/api/queue/stats")
        assert answer.status_code == 200
        assert "RateLimit" not in answer.headers


async def test_with_redis_away_the_limit_lets_requests_through(
    start_api: StartApi, private_redis: RedisServer
) -> None:
    api = await limited(start_api, limit=1, REDIS_URL=private_redis.url)
    assert (await api.client.get("/api/mobile-app/apk")).status_code == 200
    assert (await api.client.get("/api/mobile-app/apk")).status_code == 429
    private_redis.stop()
    began = time.monotonic()
    apk = await api.client.get("/api/mobile-app/apk")
    stats = await api.client.get("/api/queue/stats")
    assert time.monotonic() - began < 3
    assert apk.status_code == 200
    assert "RateLimit" not in apk.headers
    assert stats.status_code == 503  # it needs Redis itself
    assert stats.json()["error"] == "redis_unavailable"
    private_redis.start()  # empty: a fresh bucket
    assert (await api.client.get("/api/mobile-app/apk")).status_code == 200


async def test_the_openapi_document_lists_the_429_of_every_limited_route(
    start_api: StartApi,
) -> None:
    api = await limited(start_api)
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    for path in ("/api/mining/status", "/api/mining/click/status", "/api/queue/stats"):
        refused = paths[path]["get"]["responses"]["429"]
        assert "API_RATE_LIMIT" in refused["description"], path
        assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(refused["headers"])
    assert "API_RATE_LIMIT" in paths["/api/auth/login"]["post"]["responses"]["429"]["description"]
    for path in ("/api/health", "/api/metrics", "/health", "/healthz"):
        assert "429" not in paths[path]["get"]["responses"], path
    assert "API_RATE_LIMIT" not in str(paths["/api/mining/click"]["post"]["responses"]["429"])
