"""Redis unreachable or hung: fast JSON 503 with Retry-After, and recovery without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.servers import RedisServer
from tests.support.api import Api
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

# Bounds below come from the settings under test; this much more is allowed for a busy machine
# (scheduling, not timeouts: a missing timeout would hang until the test's own deadline).
SLACK = 2.0


def unread_bytes(port: int) -> int:
    """Bytes waiting in the receive queues of the server side of connections to ``port``:
    requests that reached a Redis that is not reading them (stopped)."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                waiting += int(fields[4].split(":")[1], 16)
    return waiting


async def clicks_again(api: Api, within: float) -> None:
    """A new click is taken again (with a new key each try) within ``within`` seconds."""
    keys = iter(range(1_000_000))
    deadline = time.monotonic() + within
    while (await api.click("u1", f"again-{next(keys)}")).status_code != 202:
        assert time.monotonic() < deadline, f"no click taken {within:.0f}s after Redis returned"
        await asyncio.sleep(0.05)


async def test_redis_down_then_back(start_api: Any, private_redis: RedisServer) -> None:
    api: Api = await start_api(
        REDIS_URL=private_redis.url, REDIS_CONNECT_TIMEOUT=0.5, REDIS_SOCKET_TIMEOUT=1
    )
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
    redis_bound = api.settings.redis.connect_timeout + api.settings.redis.socket_timeout
    assert elapsed < 3 * redis_bound + SLACK, f"answers took {elapsed:.1f}s"

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
    bound = min(api.settings.admission.timeout_seconds, api.settings.redis.socket_timeout)
    assert elapsed < bound + SLACK, f"answer took {elapsed:.1f}s"
    await clicks_again(api, within=10)


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
        # Its script call reached Redis (which reads nothing while stopped): later clicks wait.
        await eventually(lambda: unread_bytes(private_redis.port) > 0, 10, "script call sent")
        waiting = await asyncio.gather(*(api.click("u1", f"waiting{n}") for n in range(3)))
        assert [r.status_code for r in waiting] == [503] * 3
        assert (await in_flight).status_code == 503
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)

    async def status(key: str) -> int:
        return (await api.status("u1", key)).status_code

    # Redis runs the call it had received: "sent" is queued; the others were never sent.
    deadline = time.monotonic() + 10
    while (sent := await status("sent")) != 202:
        assert sent in (404, 503), sent
        assert time.monotonic() < deadline, "the call Redis had received never ran"
        await asyncio.sleep(0.05)
    for n in range(3):
        assert await status(f"waiting{n}") == 404
    retried = await api.click("u1", "sent")
    assert retried.status_code == 200
    assert retried.headers["Idempotent-Replayed"] == "true"
