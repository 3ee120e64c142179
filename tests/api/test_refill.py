"""Token buckets refill at their rate, up to their burst, on the clock the script reads.

Most limit tests run at 0.001 tokens/s so that nothing comes back during a test; these tests
are about what comes back, and when. The exact ones set the script's clock themselves
(``tests/support/redis_clock.py``); one watches the real clock, asserting only what a busy
machine cannot change: a token comes back, and never earlier than the rate allows.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
import pytest
import redis

from tests.support.api import Api
from tests.support.redis_clock import RedisClock, install_test_clock

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis) -> RedisClock:
    return install_test_clock(monkeypatch, redis_client)


class Clicker:
    """Clicks of one user, each with a new key."""

    def __init__(self, api: Api, user: str = "u1") -> None:
        self.api = api
        self.user = user
        self.sent = 0

    async def click(self, clicks: int = 1) -> httpx.Response:
        self.sent += 1
        return await self.api.click(self.user, f"k{self.sent}", {"clicks": clicks})

    async def codes(self, n: int) -> list[int]:
        return [(await self.click()).status_code for _ in range(n)]


async def user_limited(start_api: Any, rate: float, burst: int) -> Clicker:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=rate, MINING_RATE_LIMIT_USER_BURST=burst)
    return Clicker(api)


async def test_a_token_comes_back_after_one_over_the_rate(
    start_api: Any, clock: RedisClock
) -> None:
    user = await user_limited(start_api, rate=2, burst=2)
    assert await user.codes(3) == [202, 202, 429]
    clock.advance(499)
    limited = await user.click()
    assert limited.status_code == 429
    assert limited.headers["RateLimit"] == '"user";r=0;t=1'
    clock.advance(1)  # 500 ms after the bucket emptied: exactly one token
    assert await user.codes(2) == [202, 429]
    clock.advance(250)
    assert await user.codes(1) == [429]
    clock.advance(250)
    accepted = await user.click()
    assert accepted.status_code == 202
    assert accepted.headers["RateLimit"] == '"user";r=0;t=1'


async def test_refill_stops_at_the_burst(start_api: Any, clock: RedisClock) -> None:
    user = await user_limited(start_api, rate=2, burst=3)
    assert await user.codes(4) == [202, 202, 202, 429]
    clock.advance(3_600_000)  # an hour: far more than the burst's worth
    assert await user.codes(4) == [202, 202, 202, 429]


async def test_partial_tokens_add_up(start_api: Any, clock: RedisClock) -> None:
    user = await user_limited(start_api, rate=4, burst=4)
    assert (await user.click(4)).status_code == 202
    for _ in range(3):  # 3 x 100 ms: 1.2 tokens, not enough for a click of 2
        clock.advance(100)
        assert (await user.click(2)).status_code == 429
    clock.advance(200)  # 2.0 tokens
    assert (await user.click(2)).status_code == 202


async def test_a_clock_stepping_back_takes_no_tokens(start_api: Any, clock: RedisClock) -> None:
    user = await user_limited(start_api, rate=1, burst=2)
    assert await user.codes(1) == [202]
    clock.advance(-10_000)  # e.g. a failover to a replica whose clock is behind
    assert await user.codes(2) == [202, 429]


@pytest.mark.parametrize("rate", [0.3, 0.4, 0.7, 3, 7])
async def test_retry_after_is_rounded_up_and_waiting_it_is_enough(
    start_api: Any, clock: RedisClock, rate: float
) -> None:
    user = await user_limited(start_api, rate=rate, burst=1)
    assert (await user.click()).status_code == 202
    waited = 0
    for step in (0, 700, 1200):  # from an empty bucket, then from partial tokens
        clock.advance(step)
        waited += step
        limited = await user.click()
        assert limited.status_code == 429
        missing_ms = 1000 / rate - waited  # until one token is back
        retry_after = int(limited.headers["Retry-After"])
        assert retry_after == max(1, math.ceil(missing_ms / 1000 - 1e-9)), (step, missing_ms)
        window = math.ceil(1 / rate - 1e-9)
        assert f'"user";q=1;w={max(1, window)}' in limited.headers["RateLimit-Policy"]
        if missing_ms <= 1200:
            break
    # A client that waits one second less than told is still early; one that waits as told
    # gets through.
    if retry_after > 1:
        clock.advance((retry_after - 1) * 1000)
        assert (await user.click()).status_code == 429
        clock.advance(1000)
    else:
        clock.advance(1000)
    assert (await user.click()).status_code == 202


async def test_tokens_come_back_in_real_time(start_api: Any) -> None:
    rate, burst = 4.0, 100
    api: Api = await start_api(
        MINING_RATE_LIMIT_PER_USER=rate,
        MINING_RATE_LIMIT_USER_BURST=burst,
        MINING_MAX_CLICKS_PER_REQUEST=burst,
    )
    user = Clicker(api)
    started = time.monotonic()
    assert (await user.click(burst)).status_code == 202  # empty in one request
    # An idle bucket expires once it would be full again (25 s here), and a new one is full:
    # the token must come back well before that, or only the expiry gave it back.
    deadline = started + burst / rate * 0.8
    while (response := await user.click()).status_code == 429:
        assert time.monotonic() < deadline, "no token came back before the bucket expired"
        await asyncio.sleep(0.02)
    assert response.status_code == 202
    assert time.monotonic() - started >= 1 / rate, "a token came back earlier than the rate"
