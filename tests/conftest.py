"""Fixtures that start real servers (Redis, the MongoDB wire-protocol server) on free ports."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import settings
from pymongo import MongoClient
from pymongo.database import Database

from crypto_mine.api.app import create_app
from crypto_mine.pipeline.ledger import Ledger
from devstack.servers import MongoServer, RedisServer, serving

from .support.api import Api, Settings, settings_factory
from .support.cluster import local_cluster

# Property tests judge results, never speed: Hypothesis's default deadline (200 ms per example)
# fails them on a busy machine.
settings.register_profile("crypto-mine", deadline=None)
settings.load_profile("crypto-mine")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from serving(RedisServer(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    yield from serving(MongoServer(tmp_path_factory.mktemp("mongo")))


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ready Kubernetes API server for the whole session (see tests/support/cluster.py)."""
    with local_cluster(tmp_path_factory.mktemp("cluster")) as path:
        yield path


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
def database(mongo_server: MongoServer, mongo_db: str) -> Iterator[Database[dict[str, Any]]]:
    """The test's MongoDB database, read as the ledger reads it (timezone-aware)."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[mongo_db]
    client.close()


@pytest.fixture
def ledger(database: Database[dict[str, Any]]) -> Ledger:
    """A ledger on the test's database, 2 coins a click, its indexes made."""
    ledger = Ledger(database, reward_per_click=2)
    ledger.ensure_indexes()
    return ledger


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that stop or restart it."""
    yield from serving(RedisServer(tmp_path / "redis"))


@pytest.fixture
def make_settings(redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str) -> Settings:
    return settings_factory(redis_server, mongo_server, mongo_db)


@pytest.fixture
async def start_api(
    redis_client: Any, make_settings: Settings
) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Any] = []

    async def start(**overrides: Any) -> Api:
        settings = make_settings(**overrides)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 5000)),
            base_url="http://api",
        )
        stack.append((lifespan, client))
        return Api(client, settings)

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def api(start_api: Callable[..., Any]) -> Api:
    return await start_api()  # type: ignore[no-any-return]
