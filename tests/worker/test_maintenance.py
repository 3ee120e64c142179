"""RQ's recovery sweep: a worker killed in the middle of one does not hold it up for long.

RQ's own sweep takes the queue's cleaning lock for 899 s and frees it only when it ends; a
worker killed or cut off from Redis during a sweep left jobs of dead workers unrecovered for 15
minutes (seen in the whole-stack chaos run as a queue that would not drain).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from crypto_mine.common.names import QUEUE_NAME
from crypto_mine.common.settings import Env
from crypto_mine.worker import worker as worker_module
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
