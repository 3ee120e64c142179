"""The MongoDB driver metrics, on the real MongoDB wire server: command durations and failures,
pool use and exhaustion, and whether a writable server is reachable."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import MongoClient, monitoring
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from crypto_mine.common.mongo import async_mongo_client, mongo_client
from crypto_mine.common.settings import Env, MongoSettings
from devstack.servers import MongoServer


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def settings(server: MongoServer, **env: str) -> MongoSettings:
    return MongoSettings.from_env(Env({"MONGODB_URI": server.uri, "MONGODB_DB": "m", **env}))


@pytest.fixture
def client(mongo_server: MongoServer) -> Iterator[MongoClient[dict[str, Any]]]:
    made = mongo_client(settings(mongo_server))
    yield made
    made.close()


def test_commands_are_timed_and_failures_counted(client: MongoClient[dict[str, Any]]) -> None:
    before = value("mongodb_client_command_duration_seconds_count", command="insert")
    failed = value("mongodb_client_command_failures_total", command="aggregate")
    client.m.things.insert_one({"n": 1})
    client.m.things.insert_one({"n": 2})
    with pytest.raises(OperationFailure):
        list(client.m.things.aggregate([{"$noSuchStage": 1}]))
    assert value("mongodb_client_command_duration_seconds_count", command="insert") == before + 2
    assert value("mongodb_client_command_failures_total", command="aggregate") == failed + 1
    assert value("mongodb_client_command_duration_seconds_sum", command="insert") > 0


class InUseDuringCommands(monitoring.CommandListener):
    """Reads the in-use gauge while each command holds its connection."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.seen: list[float] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append(value("mongodb_client_pool_connections_in_use", address=self.address))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_pool_gauges_follow_the_connections(mongo_server: MongoServer) -> None:
    address = mongo_server.uri.split("//")[1].split("/")[0]
    max_before = value("mongodb_client_pool_max_connections", address=address)
    open_before = value("mongodb_client_pool_connections", address=address)
    watcher = InUseDuringCommands(address)
    client = mongo_client(settings(mongo_server, DB_MAX_POOL_SIZE="7"), event_listeners=[watcher])
    try:
        client.m.things.insert_one({"n": 1})
        client.m.things.find_one({})
        assert value("mongodb_client_pool_max_connections", address=address) == max_before + 7
        assert value("mongodb_client_pool_connections", address=address) >= open_before + 1
        idle = value("mongodb_client_pool_connections_in_use", address=address)
        assert watcher.seen == [idle + 1, idle + 1]
    finally:
        client.close()
    assert value("mongodb_client_pool_max_connections", address=address) == max_before
    assert value("mongodb_client_pool_connections", address=address) == open_before


def test_exhausted_pool_counts_waiters_and_timeouts(tmp_path: Path) -> None:
    """One caller holds the only connection on a stopped server; the next one waits, counted
    in the waiting gauge for the whole wait queue timeout, then fails as a timeout."""
    mongo = MongoServer(tmp_path / "mongo").start()
    address = mongo.uri.split("//")[1].split("/")[0]
    tight = mongo_client(
        settings(mongo, DB_MAX_POOL_SIZE="1", DB_MIN_POOL_SIZE="0"), waitQueueTimeoutMS=3000
    )
    timeouts = value("mongodb_client_pool_checkout_failures_total", reason="timeout")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            tight.m.things.find_one({})
        except PyMongoError as error:
            errors.append(error)

    holder = threading.Thread(target=read)
    waiter = threading.Thread(target=read)
    try:
        tight.m.things.find_one({})  # the pool's one connection is open
        mongo.signal(signal.SIGSTOP)  # from now on a command holds its connection
        holder.start()
        until(lambda: value("mongodb_client_pool_connections_in_use", address=address) == 1)
        waiter.start()
        until(lambda: value("mongodb_client_pool_waiting", address=address) == 1)
        waiter.join(30)
        assert len(errors) == 1, errors
        assert value("mongodb_client_pool_checkout_failures_total", reason="timeout") > timeouts
    finally:
        mongo.signal(signal.SIGCONT)
        holder.join(60)
        waiter.join(60)
        tight.close()
        mongo.stop()
    assert value("mongodb_client_pool_waiting", address=address) == 0
    assert value("mongodb_client_pool_connections_in_use", address=address) == 0


def until(check: Callable[[], bool], timeout: float = 10, what: str = "the metric") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.01)


def wait_for(expected: float, timeout: float = 20) -> None:
    until(lambda: value("mongodb_client_writable") == expected, timeout, f"writable {expected}")


def test_writable_drops_while_the_server_is_away(tmp_path: Path) -> None:
    server = MongoServer(tmp_path / "mongo").start()
    client = mongo_client(settings(server), heartbeatFrequencyMS=500)
    try:
        client.m.things.insert_one({"n": 1})
        wait_for(1)
        server.stop()
        with pytest.raises(ConnectionFailure):
            client.m.things.insert_one({"n": 2})
        wait_for(0)
        server.start()
        wait_for(1)
        client.m.things.insert_one({"n": 3})
    finally:
        client.close()
        server.stop()


def test_an_asyncio_client_is_made_before_the_event_loop_runs(mongo_server: MongoServer) -> None:
    """uvicorn's workers import the app (and make its client) before their loop starts."""
    client = async_mongo_client(settings(mongo_server))
    before = value("mongodb_client_command_duration_seconds_count", command="ping")

    async def ping() -> None:
        await client.admin.command("ping")
        await client.close()

    asyncio.run(ping())
    assert value("mongodb_client_command_duration_seconds_count", command="ping") == before + 1
