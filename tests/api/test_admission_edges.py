"""The admission scripts at their edges: a bucket holding exactly the cost, waits and refill
times a fraction of a millisecond past a second, ties between buckets, the real clock across a
second's boundary, the record's lifetime and the queue's registration with RQ.

Most use the clock the test sets (``tests/support/redis_clock.py``); the real-clock one does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from crypto_mine.common.names import QUEUE_NAME, Keys
from tests.support.api import Api
from tests.support.redis_clock import RedisClock, install_test_clock

pytestmark = pytest.mark.anyio

# A rate at which one token takes 1000.4 ms: a second and a fraction of a millisecond.
PAST_A_SECOND = 1 / 1.0004


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis) -> RedisClock:
    return install_test_clock(monkeypatch, redis_client)


async def test_a_bucket_holding_exactly_the_cost_pays_it(start_api: Any, clock: RedisClock) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=1, MINING_RATE_LIMIT_USER_BURST=3)
    assert (await api.click("u1", "a", {"clicks": 3})).status_code == 202
    assert (await api.click("u1", "b")).status_code == 429


async def test_waits_and_refill_times_round_up_to_the_next_second(
    start_api: Any, clock: RedisClock
) -> None:
    api: Api = await start_api(
        MINING_RATE_LIMIT_PER_USER=PAST_A_SECOND, MINING_RATE_LIMIT_USER_BURST=1
    )
    accepted = await api.click("u1", "a")
    assert accepted.status_code == 202
    # The bucket is full again in 1000.4 ms: 1001 ms, so 2 s, not 1.
    assert accepted.headers["RateLimit"] == '"user";r=0;t=2'
    limited = await api.click("u1", "b")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    clock.advance(1000)
    assert (await api.click("u1", "c")).status_code == 429  # 0.4 ms early
    clock.advance(1)
    assert (await api.click("u1", "d")).status_code == 202


async def global_and_user_buckets(start_api: Any, burst: int) -> Api:
    """An api whose global and per-user buckets both refill 1 token a second up to ``burst``."""
    api: Api = await start_api(
        MINING_RATE_LIMIT_GLOBAL=1,
        MINING_RATE_LIMIT_GLOBAL_BURST=burst,
        MINING_RATE_LIMIT_PER_USER=1,
        MINING_RATE_LIMIT_USER_BURST=burst,
    )
    return api


async def test_of_buckets_refusing_alike_the_first_is_named(
    start_api: Any, clock: RedisClock
) -> None:
    api = await global_and_user_buckets(start_api, burst=1)
    assert (await api.click("u1", "a")).status_code == 202  # both buckets now empty
    limited = await api.click("u1", "b")
    assert limited.status_code == 429
    assert limited.json()["limit"] == "global"
    assert limited.headers["RateLimit"].startswith('"global";')


async def test_of_buckets_equally_full_the_first_is_named(
    start_api: Any, clock: RedisClock
) -> None:
    api = await global_and_user_buckets(start_api, burst=10)
    accepted = await api.click("u1", "a")  # both at 9 of 10; the ip bucket far fuller
    assert accepted.status_code == 202
    assert accepted.headers["RateLimit"].startswith('"global";r=9;')


async def test_tokens_come_back_across_a_second_on_the_servers_clock(start_api: Any) -> None:
    """The real clock (no test clock): a second's boundary passed, the token is back."""
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=1, MINING_RATE_LIMIT_USER_BURST=1)
    assert (await api.click("u1", "a")).status_code == 202
    assert (await api.click("u1", "b")).status_code == 429
    await asyncio.sleep(1.3)  # 1.3 tokens' worth, whatever the second it started in
    assert (await api.click("u1", "c")).status_code == 202


async def test_a_waiting_clicks_record_lives_the_idempotency_ttl(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api: Api = await start_api(MINING_IDEMPOTENCY_TTL_SECONDS=3600)
    assert (await api.click("u1", "a")).status_code == 202
    assert 3590 < redis_client.ttl(Keys.click("u1", "a")) <= 3600


async def test_the_queue_is_registered_with_rq(api: Api, redis_client: redis.Redis) -> None:
    """RQ's own tools (``rq info``, Queue.all) list the queues of this set."""
    assert (await api.click("u1", "a")).status_code == 202
    assert f"rq:queue:{QUEUE_NAME}" in redis_client.smembers("rq:queues")
