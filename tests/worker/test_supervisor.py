"""The worker pod as real processes: SIGTERM drains, dead processes come back, metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from crypto_mine.common.names import Keys
from crypto_mine.pipeline.queue_stats import QueueKeys
from devstack.servers import MongoServer, RedisServer
from tests.support.api import Api
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.anyio


async def first_batch_done(api: Api, redis_client: redis.Redis) -> None:
    """Click once and wait until the worker is idle again.

    The first job is done once RQ took it out of the started registry too (the depth drops a
    moment before): only then does one started job mean the next batch.
    """
    assert (await api.click("u1", "first")).status_code == 202
    await eventually(
        lambda: (
            redis_client.get(Keys.queue_depth) == "0" and redis_client.zcard(QueueKeys.started) == 0
        ),
        20,
        "first batch",
    )


async def test_sigterm_finishes_the_current_batch_and_takes_no_new_one(
    start_api: object, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    api: Api = await start_api(MONGODB_URI=mongo.uri)  # type: ignore[operator]
    worker = WorkerProcess(tmp_path, redis_server.url, mongo.uri, "drain").start()
    try:
        await first_batch_done(api, redis_client)
        os.kill(mongo.pid, signal.SIGSTOP)  # the next batch hangs on MongoDB
        assert (await api.click("u1", "current")).status_code == 202
        await eventually(lambda: redis_client.zcard(QueueKeys.started) == 1, 10, "batch started")
        worker.signal(signal.SIGTERM)
        await asyncio.sleep(1)
        assert (await api.click("u1", "later")).status_code == 202
        os.kill(mongo.pid, signal.SIGCONT)
        assert worker.proc is not None
        assert worker.proc.wait(30) == 0
        current = await api.status("u1", "current")
        assert current.status_code == 200, current.text
        later = await api.status("u1", "later")
        assert later.status_code == 202, later.text
        assert redis_client.llen(QueueKeys.queue) == 1
        assert redis_client.get(Keys.queue_depth) == "1"
    finally:
        os.kill(mongo.pid, signal.SIGCONT)
        worker.stop()
        mongo.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_past_the_shutdown_grace_the_batch_is_cut_off_and_applied_later_once(
    start_api: object, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    grace = 2.0
    # A killed worker's job is taken back once its heartbeat (job timeout + margin) lapses.
    recovery = {"MINING_WORKER_HEARTBEAT_MARGIN": 2, "MINING_WORKER_MAINTENANCE_INTERVAL": 2}
    mongo = MongoServer(tmp_path / "mongo").start()
    api: Api = await start_api(  # type: ignore[operator]
        MONGODB_URI=mongo.uri, MINING_JOB_TIMEOUT_SECONDS=8
    )
    pod = WorkerProcess(
        tmp_path / "pod",
        redis_server.url,
        mongo.uri,
        "grace",
        MINING_WORKER_SHUTDOWN_GRACE=grace,
        **recovery,
    ).start()
    replacement: WorkerProcess | None = None
    try:
        await first_batch_done(api, redis_client)
        os.kill(mongo.pid, signal.SIGSTOP)  # the next batch hangs on MongoDB, past the grace
        assert (await api.click("u1", "stuck")).status_code == 202
        await eventually(lambda: redis_client.zcard(QueueKeys.started) == 1, 10, "batch started")
        children = pod.spawned_children()
        assert children
        signalled = time.monotonic()
        pod.signal(signal.SIGTERM)
        assert pod.proc is not None
        assert pod.proc.wait(grace + 30) == 0
        assert time.monotonic() - signalled >= grace, "the batch was not given its grace"
        await eventually(lambda: not any(map(alive, children)), 10, "worker processes killed")
        assert (await api.status("u1", "stuck")).status_code == 202, "cut off, not applied"
        os.kill(mongo.pid, signal.SIGCONT)
        replacement = WorkerProcess(
            tmp_path / "pod2", redis_server.url, mongo.uri, "grace", **recovery
        ).start()
        await eventually(
            lambda: redis_client.get(Keys.queue_depth) == "0", 60, "the cut-off batch applied"
        )
        stuck = await api.status("u1", "stuck")
        assert stuck.status_code == 200, stuck.text
        assert stuck.json()["result"]["balance"] == 2, "applied once, after the first click"
    finally:
        os.kill(mongo.pid, signal.SIGCONT)
        pod.stop()
        if replacement is not None:
            replacement.stop()
        mongo.stop()


async def test_a_killed_worker_process_is_replaced(
    api: Api,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    worker = WorkerProcess(
        tmp_path, redis_server.url, mongo_server.uri, mongo_db, MINING_WORKER_CONCURRENCY=2
    ).start()
    try:
        await eventually(lambda: len(worker.spawned_children()) == 2, 20, "two worker processes")
        victim = worker.spawned_children()[0]
        os.kill(victim, signal.SIGKILL)
        await eventually(
            lambda: len(worker.spawned_children()) == 2 and victim not in worker.spawned_children(),
            20,
            "a replacement",
        )
        for i in range(20):
            assert (await api.click(f"u{i}", "k")).status_code == 202
        await eventually(lambda: redis_client.get(Keys.queue_depth) == "0", 30, "clicks applied")
        assert (await api.status("u7", "k")).status_code == 200
    finally:
        worker.stop()


async def test_metrics_and_one_queue_reporter(
    api: Api,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    """Two worker pods and the api compete for the reporter lease: one exports at a time."""
    pods = [
        WorkerProcess(tmp_path / f"pod{i}", redis_server.url, mongo_server.uri, mongo_db).start()
        for i in range(2)
    ]

    async def exporters() -> list[str]:
        texts = {f"pod{i}": pod.metrics() for i, pod in enumerate(pods) if pod.alive()}
        texts["api"] = (await api.client.get("/api/metrics")).text
        return [name for name, text in texts.items() if "mining_click_queue_depth 0.0" in text]

    async def one_exporter(seconds: float, what: str) -> str:
        deadline = time.monotonic() + seconds
        while len(found := await exporters()) != 1:
            assert time.monotonic() < deadline, f"{what}: exporters {found}"
            await asyncio.sleep(0.2)
        return found[0]

    try:
        for i in range(5):
            assert (await api.click("u1", f"k{i}")).status_code == 202
        await eventually(lambda: redis_client.get(Keys.queue_depth) == "0", 30, "clicks applied")
        await one_exporter(15, "one reporter")
        text = "".join(pod.metrics() for pod in pods)
        processed = sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("mining_worker_processed_total ")
        )
        assert processed == 5
        # The one exporter, api or worker, carries the queue-wide gauges once.
        everywhere = text + (await api.client.get("/api/metrics")).text
        assert everywhere.count("mining_queue_dead_letters 0.0") == 1
        lags = [line for line in everywhere.splitlines() if line.startswith("mining_worker_lag")]
        assert len(lags) == 1, lags
        assert "mining_worker_batch_duration_seconds_bucket" in text
        # The holder vanishes without releasing (its lease is taken over and lapses): one other
        # takes over once it has expired.
        redis_client.set(Keys.depth_reporter, "vanished", ex=2)
        await one_exporter(20, "takeover")
        # No worker pod at all: the api exports the depth.
        for pod in pods:
            pod.stop()
        assert await one_exporter(20, "the api alone") == "api"
    finally:
        for pod in pods:
            pod.stop()
