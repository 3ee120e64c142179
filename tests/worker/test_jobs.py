"""The job function under a real RQ worker: outcomes, poison, retries while MongoDB is away."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from pymongo.database import Database
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from crypto_mine.common.names import QUEUE_NAME, Keys
from crypto_mine.pipeline.queue_stats import QueueKeys
from crypto_mine.worker import jobs
from devstack.servers import MongoServer
from tests.support.api import Api

from .conftest import RunWorker, enqueue_raw

pytestmark = pytest.mark.anyio


async def test_clicks_complete_and_balances_follow(
    api: Api, run_worker: RunWorker, redis_client: redis.Redis
) -> None:
    for i in range(5):
        assert (await api.click("u1", f"k{i}", {"clicks": 2})).status_code == 202
    assert (await api.click("u2", "k0")).status_code == 202
    assert redis_client.get(Keys.queue_depth) == "11"  # clicks, not requests
    run_worker()
    done = await api.status("u1", "k4")
    assert done.status_code == 200
    assert done.json()["result"]["reward"] == 10
    assert done.json()["result"]["balance"] == 50
    assert done.json()["result"]["duplicate"] is False
    assert redis_client.get(Keys.queue_depth) == "0"
    assert redis_client.hlen(Keys.queue_jobs) == 0
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert status.json()["balance"] == 50
    assert status.json()["clicks"] == 10
    stats = (await api.client.get("/api/queue/stats")).json()
    assert (stats["depth"], stats["jobs"], stats["inProgress"], stats["failed"]) == (0, 0, 0, 0)


async def test_a_repeat_after_completion_replays_the_result(
    api: Api, run_worker: RunWorker
) -> None:
    assert (await api.click("u1", "k")).status_code == 202
    run_worker()
    replay = await api.click("u1", "k")
    assert replay.status_code == 200
    assert replay.json()["status"] == "completed"
    assert replay.json()["result"]["balance"] == 5


async def test_key_seen_again_after_its_record_left_redis_is_replayed_from_mongodb(
    api: Api, run_worker: RunWorker, redis_client: redis.Redis, database: Database[Any]
) -> None:
    assert (await api.click("u1", "k")).status_code == 202
    assert (await api.click("u1", "other", {"clicks": 2})).status_code == 202
    run_worker()
    within = await api.click("u1", "k")
    assert within.json()["result"]["balance"] == 15
    redis_client.delete(Keys.click("u1", "k"))  # as if the window had passed
    after = await api.click("u1", "k")
    assert (after.status_code, after.headers["Idempotent-Replayed"]) == (200, "true")
    assert after.json() == within.json()
    assert redis_client.get(Keys.queue_depth) == "0"  # nothing queued again
    assert redis_client.llen(QueueKeys.queue) == 0
    assert 0 < redis_client.ttl(Keys.click("u1", "k")) <= api.settings.idempotency.window_seconds
    # Its batch's marker gone (8 days later): the balance right after that batch is no
    # longer known; the rest of the answer still is.
    database["batches"].delete_many({})
    redis_client.delete(Keys.click("u1", "k"))
    late = await api.click("u1", "k")
    assert late.json() == {**within.json(), "result": {**within.json()["result"], "balance": None}}


async def test_key_seen_again_while_mongodb_cannot_tell_is_still_applied_once(
    start_api: Any, run_worker: RunWorker, redis_client: redis.Redis, tmp_path: Any
) -> None:
    """The api's MongoDB is away: the key is taken as new (202), and the worker's unique index
    keeps the click from counting twice (its outcome says it is a duplicate)."""
    api = await start_api()
    assert (await api.click("u1", "k")).status_code == 202
    run_worker()
    redis_client.delete(Keys.click("u1", "k"))  # as if the window had passed
    away = MongoServer(tmp_path / "away")  # never started: nothing listens on its port
    blind = await start_api(MONGODB_URI=away.uri, DB_SERVER_SELECTION_TIMEOUT=100)
    assert (await blind.click("u1", "k")).status_code == 202
    run_worker()
    body = (await api.status("u1", "k")).json()
    assert body["result"]["duplicate"] is True
    assert body["result"]["balance"] == 5
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert (status.json()["balance"], status.json()["clicks"]) == (5, 1)


async def test_poison_job_is_dead_lettered_with_its_error_code(
    run_worker: RunWorker, raw_redis: redis.Redis, redis_client: redis.Redis
) -> None:
    job = enqueue_raw(raw_redis, "not a list of clicks")
    run_worker()
    registry = FailedJobRegistry(QUEUE_NAME, connection=job.connection, serializer=JSONSerializer)
    assert job.id in registry.get_job_ids()
    job.refresh()
    assert job.get_status() == "failed"
    assert job.meta["error_code"] == "invalid_payload"
    assert redis_client.llen("rq:queue:mining-clicks") == 0


async def test_invalid_click_fails_alone(
    api: Api, run_worker: RunWorker, raw_redis: redis.Redis, redis_client: redis.Redis
) -> None:
    assert (await api.click("u1", "good")).status_code == 202
    # A click the api would never send, next to a valid one, in one job.
    redis_client.hset(Keys.click("u1", "bad"), mapping={"s": "queued", "f": "x", "n": "0"})
    enqueue_raw(
        raw_redis,
        [
            {"user": "u1", "key": "bad", "clicks": 0, "at": 0},
            {"user": "u1", "key": "fine", "clicks": 1, "at": 0},
        ],
    )
    run_worker()
    bad = await api.status("u1", "bad")
    assert bad.status_code == 409
    assert bad.json()["error"]["code"] == "invalid_click"
    assert (await api.status("u1", "good")).status_code == 200
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert status.json()["balance"] == 10


async def test_mongodb_away_keeps_the_job_and_backs_off(
    api: Api,
    run_worker: RunWorker,
    redis_client: redis.Redis,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    assert (await api.click("u1", "k")).status_code == 202
    mongo.stop()
    started = time.monotonic()
    failed_attempts: list[float] = []
    original = jobs.run_observed

    def run_observed(*args: Any) -> Any:
        failed_attempts.append(time.monotonic())
        if len(failed_attempts) == 3:
            mongo.start()  # back before the third attempt
        return original(*args)

    monkeypatch.setattr(jobs, "run_observed", run_observed)
    try:
        run_worker(
            MONGODB_URI=mongo.uri, DB_SERVER_SELECTION_TIMEOUT=200, MINING_WORKER_RETRY_BUDGET=1
        )
    finally:
        mongo.stop()
    assert len(failed_attempts) >= 3, "the job went back to the queue after each budget"
    assert (await api.status("u1", "k")).status_code == 200
    assert redis_client.get(Keys.queue_depth) == "0"
    assert time.monotonic() - started > 1.5
