"""USE_QUEUE=false: the api applies clicks itself, with the limits and idempotency of queue
mode, the worker's exactly-once code, and the same balances as a real worker gives."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from crypto_mine.api.app import create_app
from crypto_mine.common.names import Keys
from crypto_mine.pipeline.queue_stats import QueueKeys
from devstack.servers import MongoServer, RedisServer, wait_until
from tests.support.api import Api, Settings
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

INLINE = {"USE_QUEUE": "false", "MINING_REWARD_PER_CLICK": "3"}

# (user, key, clicks): repeats of a key are retries of one click.
SCENARIO = [(f"u{i % 4}", f"k{i % 23}-{i % 4}", 1 + (i % 23) % 5) for i in range(60)] + [
    ("u0", "k0-0", 1),
    ("u9", "solo", 7),
]


def expected_balances() -> dict[str, tuple[int, int]]:
    clicks: dict[tuple[str, str], int] = {}
    for user, key, count in SCENARIO:
        clicks.setdefault((user, key), count)
    totals: Counter[str] = Counter()
    for (user, _), count in clicks.items():
        totals[user] += count
    return {user: (3 * count, count) for user, count in totals.items()}


def balances(mongo_uri: str, database: str) -> dict[str, tuple[int, int]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        return {
            doc["_id"]: (doc["balance"], doc["clicks"])
            for doc in client[database]["balances"].find()
        }
    finally:
        client.close()


async def send_all(api: Api) -> list[int]:
    answers = await asyncio.gather(
        *(api.click(user, key, {"clicks": clicks}) for user, key, clicks in SCENARIO)
    )
    return [answer.status_code for answer in answers]


async def test_a_click_is_applied_before_the_answer(
    start_api: Callable[..., Any], redis_client: redis.Redis
) -> None:
    api: Api = await start_api(**INLINE)
    response = await api.click("u1", "k1", {"clicks": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["result"]["reward"] == 6
    assert body["result"]["balance"] == 6
    assert body["result"]["duplicate"] is False
    assert "Idempotent-Replayed" not in response.headers
    assert response.headers["RateLimit"].startswith('"user"')

    repeat = await api.click("u1", "k1", {"clicks": 2})
    assert repeat.status_code == 200
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json() == body
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert (status.json()["balance"], status.json()["clicks"]) == (6, 2)

    # Nothing is left for a worker: no job, no depth; the outcome is on the event stream.
    assert redis_client.llen(QueueKeys.queue) == 0
    assert redis_client.keys("rq:job:*") == []
    assert redis_client.get(Keys.queue_depth) == "0"
    assert redis_client.hlen(Keys.queue_jobs) == 0
    entries = redis_client.xrange(Keys.events("u1"))
    assert [fields["ev"] for _, fields in entries] == ["click", "balance"]  # type: ignore[index,union-attr]


async def test_limits_and_idempotency_still_decide(start_api: Callable[..., Any]) -> None:
    api: Api = await start_api(
        **INLINE, MINING_RATE_LIMIT_USER_BURST="3", MINING_RATE_LIMIT_PER_USER="0.01"
    )
    assert (await api.click("u1", "a", {"clicks": 2})).status_code == 200
    mismatch = await api.click("u1", "a", {"clicks": 1})
    assert mismatch.status_code == 422
    limited = await api.click("u1", "b", {"clicks": 2})
    assert limited.status_code == 429
    assert limited.json()["limit"] == "user"
    assert (await api.status("u1", "b")).status_code == 404  # never recorded, never applied
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert status.json()["balance"] == 6


async def test_start_up_warns_that_it_is_for_development(
    make_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crypto_mine.api.app"):
        app = create_app(make_settings(**INLINE))
    assert any("USE_QUEUE=false" in r.getMessage() for r in caplog.records)
    async with app.router.lifespan_context(app):
        pass
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crypto_mine.api.app"):
        app = create_app(make_settings())
    assert not any("USE_QUEUE" in r.getMessage() for r in caplog.records)
    async with app.router.lifespan_context(app):
        pass


async def test_sync_mode_gives_the_balances_a_worker_gives(
    start_api: Callable[..., Any],
    redis_client: redis.Redis,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    tmp_path: Path,
) -> None:
    inline: Api = await start_api(**INLINE)
    statuses = await send_all(inline)
    assert set(statuses) == {200}
    assert balances(mongo_server.uri, mongo_db) == expected_balances()
    inline_outcomes = {
        (user, key): (await inline.status(user, key)).json()["result"]["reward"]
        for user, key, _ in SCENARIO
    }

    redis_client.flushall()
    # A MongoDB server of its own: the local one keeps one set of collections for every
    # database name, so another name would share the clicks applied above.
    other = MongoServer(tmp_path / "mongo").start()
    queued: Api = await start_api(MINING_REWARD_PER_CLICK="3", MONGODB_URI=other.uri)
    worker = WorkerProcess(
        tmp_path / "worker", redis_server.url, other.uri, mongo_db, MINING_REWARD_PER_CLICK=3
    ).start()
    try:
        assert set(await send_all(queued)) <= {200, 202}
        wait_until(lambda: redis_client.get(Keys.queue_depth) == "0", 60, "queue drained")
        assert balances(other.uri, mongo_db) == balances(mongo_server.uri, mongo_db)
        for (user, key), reward in inline_outcomes.items():
            assert (await queued.status(user, key)).json()["result"]["reward"] == reward
    finally:
        worker.stop()
        other.stop()


async def test_a_worker_taking_the_same_jobs_changes_nothing(
    start_api: Callable[..., Any],
    redis_client: redis.Redis,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    tmp_path: Path,
) -> None:
    worker = WorkerProcess(
        tmp_path / "worker",
        redis_server.url,
        mongo_server.uri,
        mongo_db,
        MINING_REWARD_PER_CLICK=3,
        MINING_WORKER_CONCURRENCY=2,
    ).start()
    try:
        api: Api = await start_api(**INLINE)
        assert set(await send_all(api)) == {200}
        wait_until(lambda: redis_client.llen(QueueKeys.queue) == 0, 30, "queue empty")
    finally:
        worker.stop()
    assert balances(mongo_server.uri, mongo_db) == expected_balances()
    assert redis_client.get(Keys.queue_depth) == "0"
    for user in {user for user, _, _ in SCENARIO}:
        entries = redis_client.xrange(Keys.events(user))
        keys = Counter(f["k"] for _, f in entries if f["ev"] == "click")  # type: ignore[index,union-attr]
        assert keys == Counter({key for u, key, _ in SCENARIO if u == user}), user


async def test_mongodb_away_answers_503_and_a_retry_completes_the_click(
    start_api: Callable[..., Any], redis_client: redis.Redis, tmp_path: Path
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    api: Api = await start_api(
        **INLINE,
        MONGODB_URI=mongo.uri,
        DB_SERVER_SELECTION_TIMEOUT="200",
        MINING_ADMISSION_TIMEOUT="1",
    )
    try:
        mongo.stop()
        away = await api.click("u1", "k", {"clicks": 2})
        assert away.status_code == 503
        assert away.json()["error"] == "mongodb_unavailable"
        assert away.headers["Retry-After"] == "1"
        assert (await api.status("u1", "k")).json()["status"] == "queued"
        assert redis_client.llen(QueueKeys.queue) == 1  # still there for a worker
        mongo.start()
        retry = await api.click("u1", "k", {"clicks": 2})
        assert retry.status_code == 200
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["status"] == "completed"
        assert retry.json()["result"]["balance"] == 6
        assert redis_client.llen(QueueKeys.queue) == 0
        assert redis_client.get(Keys.queue_depth) == "0"
    finally:
        mongo.stop()
