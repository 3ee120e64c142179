"""Fixtures of the api tests that run real processes: api replicas (uvicorn) and a worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from devstack.servers import MongoServer, RedisServer, serving
from tests.support.sse import ApiProcess
from tests.support.worker import WorkerProcess

StartApi = Callable[..., ApiProcess]


@pytest.fixture
def serve_api(
    tmp_path: Path,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    redis_client: redis.Redis,
) -> Iterator[StartApi]:
    started: list[ApiProcess] = []

    def start(**env: object) -> ApiProcess:
        folder = tmp_path / f"api-{len(started)}"
        api = ApiProcess(folder, redis_server.url, mongo_server.uri, mongo_db, None, **env)
        started.append(api)
        return api.start()

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def worker(
    tmp_path: Path,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    redis_client: redis.Redis,
) -> Iterator[WorkerProcess]:
    yield from serving(
        WorkerProcess(tmp_path / "worker", redis_server.url, mongo_server.uri, mongo_db)
    )
