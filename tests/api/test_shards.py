"""Click shards: users spread over several Redis servers, each shard with its own keys and queue.

One shard is the layout of a deployment that never sharded; with two, on two real Redis
servers, a user's clicks, records, status and events stay on the user's shard, each shard's
queue fills alone, and the queue statistics and gauges show every shard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from crypto_mine.common.names import (
    QUEUE_NAME,
    Keys,
    ShardKeys,
    queue_name,
    shard_of,
    shard_of_queue,
)
from crypto_mine.common.settings import Env, RedisSettings, SettingsError
from crypto_mine.pipeline.queue_stats import QueueKeys, ShardQueueKeys
from devstack.servers import RedisServer, serving
from tests.support.api import Api

pytestmark = pytest.mark.anyio


def test_one_shard_is_the_layout_of_a_deployment_that_never_sharded() -> None:
    assert Keys.click("u1", "k") == "{mining}:click:u1:k"
    assert Keys.queue_depth == "{mining}:queue:depth"
    assert QueueKeys.queue == f"rq:queue:{QUEUE_NAME}"
    assert all(shard_of(f"user-{n}", 1) == 0 for n in range(100))


def test_each_shard_has_its_own_tag_and_queue() -> None:
    second = ShardKeys(1)
    assert second.click("u1", "k") == "{mining-1}:click:u1:k"
    assert second.batch("j") == "{mining-1}:batch:j"
    assert ShardQueueKeys(1).failed == f"rq:failed:{queue_name(1)}"
    assert [shard_of_queue(queue_name(n)) for n in range(4)] == [0, 1, 2, 3]
    names = [vars(ShardKeys(n)) for n in range(3)]
    for field in ("global_bucket", "queue_depth", "queue_jobs", "open_job", "batch_prefix"):
        assert len({keys[field] for keys in names}) == 3, field


def test_users_spread_evenly_and_stably() -> None:
    users = [str(n) for n in range(10_000, 20_000)]  # ids as the id-allocator hands them out
    spread = Counter(shard_of(user, 4) for user in users)
    assert set(spread) == {0, 1, 2, 3}
    assert max(spread.values()) < 1.1 * min(spread.values()), spread
    # CRC-32 of the id: the same in every process and every version (a change would move users)
    assert [shard_of(user, 4) for user in ("10001", "10002", "alice")] == [3, 1, 3]


def settings(**env: str) -> RedisSettings:
    return RedisSettings.from_env(Env(env))


def test_the_shard_urls_list_every_shard_with_shard_0_first() -> None:
    one = settings(REDIS_URL="redis://a:6379/0")
    assert (one.shards, one.shard(0).url) == (1, "redis://a:6379/0")
    two = settings(REDIS_SHARD_URLS="redis://a:6379/0, redis://b:6379/0")
    assert (two.shards, two.url, two.shard(1).url) == (2, "redis://a:6379/0", "redis://b:6379/0")
    assert two.shard(1).shards == 1
    same = settings(REDIS_URL="redis://a:6379/0", REDIS_SHARD_URLS="redis://a:6379/0,redis://b")
    assert same.shards == 2
    with pytest.raises(SettingsError, match="REDIS_URL names another server"):
        settings(REDIS_URL="redis://c:6379/0", REDIS_SHARD_URLS="redis://a:6379/0,redis://b")
    with pytest.raises(SettingsError, match="not a redis:// URL"):
        settings(REDIS_SHARD_URLS="redis://a:6379/0,b:6379")
    with pytest.raises(SettingsError, match="MINING_SHARD=2 is not a shard"):
        two.shard(2)


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from serving(RedisServer(tmp_path / "redis-1"))


async def test_clicks_stay_on_their_users_shard(
    start_api: Any, redis_server: RedisServer, redis_client: redis.Redis, second_redis: RedisServer
) -> None:
    api: Api = await start_api(
        REDIS_SHARD_URLS=f"{redis_server.url},{second_redis.url}",
        MINING_RATE_LIMIT_GLOBAL="40",
        MINING_RATE_LIMIT_GLOBAL_BURST="40",
    )
    other = redis.Redis.from_url(second_redis.url, decode_responses=True)
    clients = [redis_client, other]
    try:
        users = [str(n) for n in range(10_000, 10_012)]
        on = {user: shard_of(user, 2) for user in users}
        assert set(on.values()) == {0, 1}
        for user in users:
            assert (await api.click(user, "k1")).status_code == 202
        for user, shard in on.items():
            assert clients[shard].exists(ShardKeys(shard).click(user, "k1"))
            assert not clients[1 - shard].exists(ShardKeys(1 - shard).click(user, "k1"))
            assert not clients[1 - shard].exists(ShardKeys(shard).click(user, "k1"))
            status = await api.status(user, "k1")
            assert status.json()["status"] == "queued", status.text
        for shard in (0, 1):
            depth = int(clients[shard].get(ShardKeys(shard).queue_depth) or 0)
            assert depth == list(on.values()).count(shard)
            assert clients[shard].llen(ShardQueueKeys(shard).queue) >= 1
            assert not clients[1 - shard].exists(ShardQueueKeys(shard).queue)

        stats = (await api.client.get("/api/queue/stats")).json()
        assert stats["depth"] == len(users)
        assert [s["queue"] for s in stats["shards"]] == [QUEUE_NAME, queue_name(1)]
        assert [s["depth"] for s in stats["shards"]] == [
            list(on.values()).count(0),
            list(on.values()).count(1),
        ]
        metrics = (await api.client.get("/api/metrics")).text
        for shard in (0, 1):  # no worker runs: the api holds both shards' leases
            count = list(on.values()).count(shard)
            line = f'mining_click_queue_depth{{queue="{queue_name(shard)}"}} {count}.0'
            assert line in metrics, metrics

        # The global limit is shared out: each shard takes half of 40 clicks a second.
        answers: Counter[int] = Counter()
        for n in range(30):
            user = next(u for u in users if on[u] == 1)
            answers[(await api.click(user, f"burst-{n}")).status_code] += 1
        assert answers[429] > 0, answers
        assert answers[202] <= 20, answers
    finally:
        other.close()


async def test_the_sync_mode_refuses_more_than_one_shard(
    start_api: Any, redis_server: RedisServer
) -> None:
    with pytest.raises(SettingsError, match="USE_QUEUE=false"):
        await start_api(REDIS_SHARD_URLS=f"{redis_server.url},redis://b:6379/0", USE_QUEUE="false")
