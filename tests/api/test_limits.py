"""Token buckets: 429 with headers naming the binding limit; all or none; client IPs."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from crypto_mine.common.names import Keys
from tests.support.api import Api

pytestmark = pytest.mark.anyio

SLOW = "0.001"  # tokens per second: no refill within a test


async def test_user_limit_is_429_with_retry_after_and_ratelimit_headers(start_api: Any) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER="0.5", MINING_RATE_LIMIT_USER_BURST=2)
    assert (await api.click("u1", "a")).status_code == 202
    second = await api.click("u1", "b")
    assert second.status_code == 202
    assert second.headers["RateLimit"] == '"user";r=0;t=4'
    limited = await api.click("u1", "c")
    assert limited.status_code == 429
    body = limited.json()
    assert (body["error"], body["limit"]) == ("rate_limited", "user")
    assert limited.headers["Retry-After"] == "2"
    assert limited.headers["RateLimit"] == '"user";r=0;t=4'
    assert '"user";q=2;w=4' in limited.headers["RateLimit-Policy"]
    assert (await api.click("u2", "a")).status_code == 202, "other users are not limited"


async def test_rejection_by_one_bucket_debits_none(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api: Api = await start_api(
        MINING_RATE_LIMIT_GLOBAL=SLOW,
        MINING_RATE_LIMIT_GLOBAL_BURST=100,
        MINING_RATE_LIMIT_PER_IP=SLOW,
        MINING_RATE_LIMIT_IP_BURST=100,
        MINING_RATE_LIMIT_PER_USER=SLOW,
        MINING_RATE_LIMIT_USER_BURST=1,
    )
    assert (await api.click("u1", "a")).status_code == 202

    def tokens(key: str) -> float:
        return float(redis_client.hget(key, "t") or "nan")

    before = (tokens(Keys.global_bucket), tokens(Keys.ip_bucket("10.0.0.1")))
    assert before[0] == pytest.approx(99, abs=0.01)
    for key in ("b", "c", "d"):
        response = await api.click("u1", key)
        assert response.status_code == 429
        assert response.json()["limit"] == "user"
    after = (tokens(Keys.global_bucket), tokens(Keys.ip_bucket("10.0.0.1")))
    assert after == pytest.approx(before, abs=0.01)
    assert (await api.click("u2", "e")).status_code == 202
    assert tokens(Keys.global_bucket) == pytest.approx(98, abs=0.01)


async def test_global_limit_binds_for_everyone(start_api: Any) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_GLOBAL=SLOW, MINING_RATE_LIMIT_GLOBAL_BURST=3)
    codes = [(await api.click(f"u{i}", "k")).status_code for i in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    limited = await api.click("u9", "k")
    assert limited.json()["limit"] == "global"
    assert limited.headers["RateLimit"].startswith('"global";r=0;')


async def test_clicks_cost_their_count(start_api: Any) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=SLOW, MINING_RATE_LIMIT_USER_BURST=10)
    assert (await api.click("u1", "a", {"clicks": 7})).status_code == 202
    assert (await api.click("u1", "b", {"clicks": 4})).status_code == 429
    assert (await api.click("u1", "c", {"clicks": 3})).status_code == 202


async def test_replays_take_tokens_too(start_api: Any) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=SLOW, MINING_RATE_LIMIT_USER_BURST=2)
    assert (await api.click("u1", "a")).status_code == 202
    assert (await api.click("u1", "a")).status_code == 200
    assert (await api.click("u1", "a")).status_code == 429


async def test_ip_limit_uses_the_peer_without_trusted_proxies(start_api: Any) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_IP=SLOW, MINING_RATE_LIMIT_IP_BURST=2)
    spoofed = {"X-Forwarded-For": "1.2.3.4"}
    codes = [(await api.click(f"u{i}", "k", **spoofed)).status_code for i in range(3)]
    assert codes == [202, 202, 429]
    assert (await api.click("u9", "k")).json()["limit"] == "ip"


async def test_trusted_proxy_hop_names_the_client(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api: Api = await start_api(
        TRUSTED_PROXY_COUNT=1, MINING_RATE_LIMIT_PER_IP=SLOW, MINING_RATE_LIMIT_IP_BURST=1
    )
    # The proxy appended the real client (5.6.7.8); the client's own claim (1.1.1.1) is ignored.
    chain = {"X-Forwarded-For": "1.1.1.1, 5.6.7.8"}
    assert (await api.click("u1", "a", **chain)).status_code == 202
    assert redis_client.exists(Keys.ip_bucket("5.6.7.8"))
    assert not redis_client.exists(Keys.ip_bucket("1.1.1.1"))
    assert (
        await api.click("u2", "a", **{"X-Forwarded-For": "9.9.9.9, 5.6.7.8"})
    ).status_code == 429
    assert (
        await api.click("u3", "a", **{"X-Forwarded-For": "5.6.7.8, 9.9.9.9"})
    ).status_code == 202


async def test_garbage_forwarded_for_falls_back_to_the_peer(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api: Api = await start_api(TRUSTED_PROXY_COUNT=1)
    assert (await api.click("u1", "a", **{"X-Forwarded-For": "evil}:key"})).status_code == 202
    assert redis_client.exists(Keys.ip_bucket("10.0.0.1"))


async def test_idle_buckets_expire(start_api: Any, redis_client: redis.Redis) -> None:
    api: Api = await start_api(MINING_RATE_LIMIT_PER_USER=100, MINING_RATE_LIMIT_USER_BURST=10)
    assert (await api.click("u1", "a")).status_code == 202
    ttl = redis_client.pttl(Keys.user_bucket("u1"))
    assert 0 < ttl <= 1000 + 10
