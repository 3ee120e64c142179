"""Backpressure within one admission call: clicks coalesced into one script call count against
each other, so a burst never takes the queue past ``MINING_QUEUE_MAX_DEPTH``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from crypto_mine.common.names import Keys
from tests.support.api import Api

pytestmark = pytest.mark.anyio


def script_calls(client: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


async def test_a_burst_in_one_call_fills_the_queue_exactly(
    start_api: Any, redis_client: redis.Redis
) -> None:
    # One admission call in flight at a time: the burst waits, and the next call carries it.
    api: Api = await start_api(MINING_QUEUE_MAX_DEPTH=5, MINING_BATCH_CONCURRENCY=1)
    assert (await api.click("u0", "warm")).status_code == 202
    redis_client.config_resetstat()
    responses = await asyncio.gather(
        *(api.click(f"u{i}", "k", {"clicks": 1 + i % 2}) for i in range(1, 9))
    )
    assert script_calls(redis_client) <= 3, "the burst was not coalesced: nothing tested"
    taken = sum(1 + i % 2 for i, r in enumerate(responses, start=1) if r.status_code == 202)
    full = [r for r in responses if r.status_code == 503]
    assert 1 + taken == 5, [r.status_code for r in responses]
    assert full
    assert all(r.json()["error"] == "queue_full" for r in full)
    assert redis_client.get(Keys.queue_depth) == "5"
