"""One exporter of the queue-wide gauges at a time, api or worker, on a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis.asyncio import Redis

from crypto_mine.common.names import Keys
from crypto_mine.pipeline.queue_reporter import (
    LEASE_SECONDS,
    RENEW_SECONDS,
    AsyncQueueReporter,
    queue_exposition,
)
from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def test_one_holder_exports_and_a_release_hands_over(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.set(Keys.queue_depth, 1234)
    client = Redis.from_url(redis_server.url)
    first, second = AsyncQueueReporter(client, "api:pod-a"), AsyncQueueReporter(client, "api:b")
    try:
        assert await first.renew() is True
        assert await second.renew() is False
        assert await first.renew() is True  # renewing keeps it
        text = (await queue_exposition([first])).decode()
        assert "mining_click_queue_depth 1234.0" in text
        assert "mining_worker_lag_seconds 0.0" in text
        assert await queue_exposition([second]) == b""
        await first.stop()  # releases the lease it holds
        assert redis_client.get(Keys.depth_reporter) is None
        assert await second.renew() is True
        await first.stop()  # not the holder any more: leaves the other's lease alone
        assert redis_client.get(Keys.depth_reporter) == "api:b"
    finally:
        await client.aclose()


async def test_processes_of_one_pod_share_the_lease(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    processes = [AsyncQueueReporter(client, "api:pod-a") for _ in range(3)]
    try:
        assert [await p.renew() for p in processes] == [True, True, True]
    finally:
        await client.aclose()


async def test_the_api_exports_the_depth_while_no_worker_runs(
    api: Api, redis_client: redis.Redis
) -> None:
    """The api's lifespan competes for the lease: with no worker, it wins and exports."""
    for i in range(3):
        assert (await api.click("u1", f"k{i}")).status_code == 202
    response = await api.client.get("/api/metrics")
    assert response.status_code == 200
    assert "mining_click_queue_depth 3.0" in response.text
    assert str(redis_client.get(Keys.depth_reporter)).startswith("api:")
    # Another holder (a worker pod): the api's next renewal finds it taken and goes silent.
    redis_client.set(Keys.depth_reporter, "worker-pod", ex=LEASE_SECONDS)
    deadline = time.monotonic() + RENEW_SECONDS + 2
    while "mining_click_queue_depth" in (await api.client.get("/api/metrics")).text:
        assert time.monotonic() < deadline, "the api kept exporting under another's lease"
        await asyncio.sleep(0.2)
