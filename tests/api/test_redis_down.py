"""Redis unreachable or hung: fast JSON 503 with Retry-After, and recovery without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def test_redis_down_then_back(start_api: Any, private_redis: RedisServer) -> None:
    api: Api = await start_api(REDIS_URL=private_redis.url)
    assert (await api.click("u1", "a")).status_code == 202
    private_redis.stop()

    started = time.monotonic()
    click = await api.click("u1", "b")
    status = await api.status("u1", "a")
    ready = await api.client.get("/readyz")
    elapsed = time.monotonic() - started
    assert click.status_code == 503
    assert click.json()["error"] == "redis_unavailable"
    assert click.headers["Retry-After"] == "1"
    assert status.status_code == 503
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "unavailable"  # no client or class names
    assert elapsed < 3, f"answers took {elapsed:.1f}s"

    private_redis.start()  # same port, empty data
    assert (await api.click("u1", "b")).status_code == 202
    assert (await api.client.get("/readyz")).status_code == 200


async def test_hung_redis_is_503_within_the_timeouts(
    start_api: Any, private_redis: RedisServer
) -> None:
    api: Api = await start_api(
        REDIS_URL=private_redis.url, REDIS_SOCKET_TIMEOUT=0.5, MINING_ADMISSION_TIMEOUT=1
    )
    assert (await api.click("u1", "a")).status_code == 202
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        click = await api.click("u1", "b")
        elapsed = time.monotonic() - started
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    assert click.status_code == 503
    assert click.json()["error"] in {"redis_unavailable", "backend_unavailable"}
    assert elapsed < 1.5, f"answer took {elapsed:.1f}s"
    await asyncio.sleep(0.2)
    assert (await api.click("u1", "c")).status_code == 202


async def test_clicks_that_timed_out_waiting_are_never_queued(
    start_api: Any, private_redis: RedisServer
) -> None:
    """A click answered 503 while it waited for its turn is dropped, not admitted afterwards.

    Only a click whose script call was already on its way to Redis may still be taken after its
    503 (the answer cannot know): a retry with the same key then replays it.
    """
    api: Api = await start_api(
        REDIS_URL=private_redis.url,
        REDIS_SOCKET_TIMEOUT=5,
        MINING_ADMISSION_TIMEOUT=0.3,
        MINING_BATCH_CONCURRENCY=1,
    )
    assert (await api.click("u1", "warm")).status_code == 202
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        in_flight = asyncio.create_task(api.click("u1", "sent"))
        await asyncio.sleep(0.05)
        waiting = await asyncio.gather(*(api.click("u1", f"waiting{n}") for n in range(3)))
        assert [r.status_code for r in waiting] == [503] * 3
        assert (await in_flight).status_code == 503
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    await asyncio.sleep(0.5)
    for n in range(3):
        assert (await api.status("u1", f"waiting{n}")).status_code == 404
    assert (await api.status("u1", "sent")).status_code == 202
    retried = await api.click("u1", "sent")
    assert retried.status_code == 200
    assert retried.headers["Idempotent-Replayed"] == "true"
