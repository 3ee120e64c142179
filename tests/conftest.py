"""Fixtures that start real servers (Redis, the MongoDB wire-protocol server) on free ports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient

from devstack.servers import MongoServer, RedisServer


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    server = MongoServer(tmp_path_factory.mktemp("mongo")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's Redis, flushed before and after the test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def mongo_db(mongo_server: MongoServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a fresh database for this test."""
    name = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.uri)
    try:
        client.drop_database(name)
        yield name
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that stop or restart it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
