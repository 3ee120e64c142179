"""``crypto-mine-queue``: the readable table and the JSON of a real queue's state."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import redis

from devstack.servers import BIN, RedisServer
from tests.support.api import Api

from .conftest import RunWorker, enqueue_raw

pytestmark = pytest.mark.anyio


def queue_cli(redis_server: RedisServer, *args: str) -> str:
    return subprocess.run(
        [str(BIN / "crypto-mine-queue"), *args],
        env={**os.environ, "REDIS_URL": redis_server.url},
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


async def test_depth_dead_letters_and_workers(
    api: Api, run_worker: RunWorker, raw_redis: redis.Redis, redis_server: RedisServer
) -> None:
    poison = enqueue_raw(raw_redis, {"not": "a list"})
    run_worker()  # dead-letters the poison job
    for i in range(3):
        assert (await api.click("u1", f"k{i}", {"clicks": 2})).status_code == 202

    data = json.loads(queue_cli(redis_server, "--json"))
    # Three requests one after another, no worker: they all join the job waiting in the queue.
    assert (data["queue"], data["depth"], data["jobs"], data["failed"]) == (
        "mining-clicks",
        6,
        1,
        1,
    )
    assert data["inProgress"] == 0
    [dead] = data["deadLetters"]
    assert dead["id"] == poison.id
    assert dead["errorCode"] == "invalid_payload"
    assert "expected a list of clicks" in dead["reason"]
    assert data["lagSeconds"] >= 0

    text = queue_cli(redis_server)
    assert "depth        6 clicks" in text
    assert "DEAD LETTERS" in text
    assert "invalid_payload" in text


def test_requeue_dead_letters(
    run_worker: RunWorker, raw_redis: redis.Redis, redis_server: RedisServer
) -> None:
    poison = enqueue_raw(raw_redis, {"not": "a list"})
    other = enqueue_raw(raw_redis, "neither")
    run_worker()
    assert json.loads(queue_cli(redis_server, "--json"))["failed"] == 2
    wrong = subprocess.run(
        [str(BIN / "crypto-mine-queue"), "requeue", "no-such-job"],
        env={**os.environ, "REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode != 0
    assert "not dead-lettered: no-such-job" in wrong.stderr
    assert queue_cli(redis_server, "requeue", poison.id) == f"requeued 1 job(s)\n  {poison.id}\n"
    data = json.loads(queue_cli(redis_server, "--json"))
    assert (data["failed"], data["jobs"]) == (1, 1)
    assert queue_cli(redis_server, "requeue", "--all") == f"requeued 1 job(s)\n  {other.id}\n"
    assert json.loads(queue_cli(redis_server, "--json"))["failed"] == 0
    run_worker()  # still poison: dead-lettered again
    assert json.loads(queue_cli(redis_server, "--json"))["failed"] == 2


def test_redis_view(redis_server: RedisServer, raw_redis: redis.Redis) -> None:
    raw_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        data = json.loads(queue_cli(redis_server, "--json", "redis"))
        assert data["maxmemory_policy"] == "allkeys-lru"
        assert data["redis_version"].startswith(("6.", "7."))
        assert data["evicted_keys"] == 0
        assert "maxmemory_policy           allkeys-lru" in queue_cli(redis_server, "redis")
    finally:
        raw_redis.config_set("maxmemory-policy", "noeviction")
