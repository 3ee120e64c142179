"""Worker processes run in the test's process, and jobs the api would never make."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from crypto_mine.common.names import APPLY_CLICKS_JOB, QUEUE_NAME
from crypto_mine.worker import jobs
from crypto_mine.worker.settings import WorkerSettings
from crypto_mine.worker.worker import ClickWorker
from devstack.servers import MongoServer, RedisServer

RunWorker = Callable[..., ClickWorker]


def reset_pipeline() -> None:
    """Close the worker process's cached clients so the next run reads its settings anew."""
    if jobs.pipeline.cache_info().currsize:
        jobs.pipeline().close()
    jobs.pipeline.cache_clear()


@pytest.fixture
def raw_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Bytes in, bytes out, as RQ wants its connection."""
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
def run_worker(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
) -> Iterator[RunWorker]:
    """Run a ClickWorker in this process until the queue is empty."""
    connection = redis.Redis.from_url(redis_server.url)

    def run(**environ: Any) -> ClickWorker:
        env = {
            "REDIS_URL": redis_server.url,
            "MONGODB_URI": mongo_server.uri,
            "MONGODB_DB": mongo_db,
            "MINING_REWARD_PER_CLICK": "5",
            "MINING_WORKER_RETRY_BUDGET": "1",
            **{k: str(v) for k, v in environ.items()},
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_pipeline()
        settings = WorkerSettings.from_env()
        queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
        worker = ClickWorker([queue], connection=connection, settings=settings)
        worker.work(burst=True, with_scheduler=False)
        return worker

    yield run
    reset_pipeline()
    connection.close()


def enqueue_raw(connection: redis.Redis, payload: Any) -> Job:
    """A job the api would never make, straight through RQ."""
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    return queue.enqueue(APPLY_CLICKS_JOB, payload)
