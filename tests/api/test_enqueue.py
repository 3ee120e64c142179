"""The enqueue step: clicks join the job still waiting at the queue's tail, up to its size."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from crypto_mine.common.names import Keys
from crypto_mine.pipeline.outcomes import OutcomeRecorder
from crypto_mine.pipeline.queue_stats import QueueKeys
from tests.support.api import Api

pytestmark = pytest.mark.anyio


def jobs(client: redis.Redis) -> list[str]:
    return [str(job) for job in client.lrange(QueueKeys.queue, 0, -1)]


def keys_of(client: redis.Redis, job: str) -> list[str]:
    return [orjson.loads(item)["key"] for item in client.lrange(Keys.batch(job), 0, -1)]


async def test_clicks_join_the_waiting_job_until_it_is_full(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api: Api = await start_api(MINING_JOB_MAX_CLICKS=5)
    for key, clicks in (("a", 2), ("b", 2), ("c", 1), ("d", 1)):
        assert (await api.click("u1", key, {"clicks": clicks})).status_code == 202
    first, second = jobs(redis_client)
    assert keys_of(redis_client, first) == ["a", "b", "c"]
    assert keys_of(redis_client, second) == ["d"]
    assert redis_client.hgetall(Keys.queue_jobs) == {first: "5", second: "1"}
    assert redis_client.get(Keys.open_job) == second
    assert redis_client.hget(Keys.click("u1", "a"), "j") == first
    assert redis_client.hget(Keys.click("u1", "d"), "j") == second
    assert redis_client.get(Keys.queue_depth) == "6"


async def test_a_claimed_job_gains_no_click(api: Api, redis_client: redis.Redis) -> None:
    assert (await api.click("u1", "a")).status_code == 202
    [job] = jobs(redis_client)
    recorder = OutcomeRecorder(redis_client, status_ttl=60)
    assert [c["key"] for c in recorder.claim(job)] == ["a"]
    assert redis_client.get(Keys.open_job) is None
    # RQ puts a retried job back at the tail: it still gains nothing once a run began.
    redis_client.lrem(QueueKeys.queue, 1, job)
    redis_client.rpush(QueueKeys.queue, job)
    assert (await api.click("u1", "b")).status_code == 202
    assert keys_of(redis_client, job) == ["a"]
    [_, newer] = jobs(redis_client)
    assert keys_of(redis_client, newer) == ["b"]


async def test_a_job_no_longer_at_the_tail_gains_no_click(
    api: Api, redis_client: redis.Redis
) -> None:
    assert (await api.click("u1", "a")).status_code == 202
    [job] = jobs(redis_client)
    redis_client.lmove(QueueKeys.queue, QueueKeys.queue + ":intermediate", "LEFT", "RIGHT")
    assert (await api.click("u1", "b")).status_code == 202
    assert keys_of(redis_client, job) == ["a"]
    [newer] = jobs(redis_client)
    assert newer != job
