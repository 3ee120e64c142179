"""RQ's recovery sweep: a worker killed in the middle of one does not hold it up for long; the
sweep of balance marks left by killed workers runs after it.

RQ's own sweep takes the queue's cleaning lock for 899 s and frees it only when it ends; a
worker killed or cut off from Redis during a sweep left jobs of dead workers unrecovered for 15
minutes (seen in the whole-stack chaos run as a queue that would not drain).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from crypto_mine.common.names import QUEUE_NAME, Keys, ShardKeys, shard_of
from crypto_mine.common.settings import Env
from crypto_mine.pipeline.ledger import Ledger, now_ms
from crypto_mine.worker import worker as worker_module
from crypto_mine.worker.marks import MARK_AGE, sweep_marks
from crypto_mine.worker.settings import WorkerSettings
from crypto_mine.worker.worker import ClickWorker
from devstack.servers import RedisServer

INTERVAL = 3


def click_worker(redis_server: RedisServer, connection: redis.Redis) -> tuple[ClickWorker, Queue]:
    settings = WorkerSettings.from_env(
        Env({"REDIS_URL": redis_server.url, "MINING_WORKER_MAINTENANCE_INTERVAL": str(INTERVAL)})
    )
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    return ClickWorker([queue], connection=connection, settings=settings), queue


def test_a_sweep_cut_off_leaves_no_long_lock(
    redis_server: RedisServer, raw_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_redis.flushall()
    worker, queue = click_worker(redis_server, raw_redis)
    lock_ttls: list[int] = []

    def cut_off(swept: Queue, *_: Any) -> None:
        lock_ttls.append(int(raw_redis.ttl(swept.registry_cleaning_key)))
        raise redis.ConnectionError("Redis went away in the middle of the sweep")

    monkeypatch.setattr(worker_module, "clean_registries", cut_off)
    with pytest.raises(redis.ConnectionError):
        worker.clean_registries()
    # Killed there, the worker's lock would lapse within one maintenance interval ...
    assert 0 < lock_ttls[0] <= INTERVAL
    # ... and cut off, it is released at once: the next sweep runs.
    assert not raw_redis.exists(queue.registry_cleaning_key)
    swept: list[str] = []
    monkeypatch.setattr(worker_module, "clean_registries", lambda q, *_: swept.append(q.name))
    worker.clean_registries()
    assert swept == [QUEUE_NAME]
    assert not raw_redis.exists(queue.registry_cleaning_key)


def test_a_held_lock_skips_the_sweep(
    redis_server: RedisServer, raw_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_redis.flushall()
    worker, queue = click_worker(redis_server, raw_redis)
    raw_redis.set(queue.registry_cleaning_key, 1, ex=INTERVAL)  # another worker is sweeping
    swept: list[str] = []
    monkeypatch.setattr(worker_module, "clean_registries", lambda q, *_: swept.append(q.name))
    worker.clean_registries()
    assert swept == []
    assert raw_redis.exists(queue.registry_cleaning_key)


def test_marks_of_batches_that_cannot_run_again_are_swept_after_the_recovery_sweep(
    redis_server: RedisServer, raw_redis: redis.Redis, ledger: Ledger, database: Any
) -> None:
    raw_redis.flushall()
    old = now_ms() - int(MARK_AGE.total_seconds() * 1000) - 1000
    marks = {"gone": old, "finished": old, "queued": old, "failed": old, "young": now_ms()}
    database["balances"].insert_one({"_id": "u", "balance": 5, "applying": marks})
    for batch, status in {"finished": "finished", "queued": "queued", "failed": "failed"}.items():
        raw_redis.hset(Job.key_for(batch), "status", status)
    raw_redis.hset(Job.key_for("young"), "status", "finished")
    connection = raw_redis
    worker, _ = click_worker(redis_server, raw_redis)
    worker.after_sweep = lambda: sweep_marks(connection, ledger)
    worker.clean_registries()
    left = database["balances"].find_one({"_id": "u"})
    # A job that is gone or finished never runs again; queued and dead-lettered ones may.
    assert sorted(left["applying"]) == ["failed", "queued", "young"]
    assert left["balance"] == 5
    assert raw_redis.get(Keys.mark_sweep) == b""  # one balance: the walk starts over


def test_a_shards_sweep_unmarks_only_its_own_users(
    raw_redis: redis.Redis, ledger: Ledger, database: Any
) -> None:
    """Shard 1's queue knows nothing of shard 0's jobs: its sweep must not take a job of
    shard 0 for gone, so it leaves the marks on shard 0's users alone."""
    raw_redis.flushall()
    old = now_ms() - int(MARK_AGE.total_seconds() * 1000) - 1000
    users = {
        shard: next(u for u in map(str, range(100)) if shard_of(u, 2) == shard) for shard in (0, 1)
    }
    for user in users.values():
        database["balances"].insert_one({"_id": user, "balance": 1, "applying": {"gone": old}})
    assert sweep_marks(raw_redis, ledger, shard=1, shards=2) == 1
    left = {doc["_id"]: doc.get("applying") for doc in database["balances"].find()}
    assert left == {users[0]: {"gone": old}, users[1]: {}}
    assert raw_redis.get(ShardKeys(1).mark_sweep) == b""
    assert not raw_redis.exists(Keys.mark_sweep)  # shard 0's walk is its own


def test_a_failing_step_after_the_sweep_is_logged_not_raised(
    redis_server: RedisServer, raw_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    raw_redis.flushall()
    worker, queue = click_worker(redis_server, raw_redis)

    def broken() -> None:
        raise RuntimeError("MongoDB away")

    worker.after_sweep = broken
    worker.clean_registries()
    assert "MongoDB away" in caplog.text
    assert not raw_redis.exists(queue.registry_cleaning_key)
