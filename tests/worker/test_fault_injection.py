"""Exactly once under faults, with real processes.

Thousands of clicks from many users, a share of them sent again with the same key, while the
worker pod (supervisor and worker processes) is killed with SIGKILL at random moments and started
again, and MongoDB is killed and restarted once. At the end every accepted click is completed,
none is applied twice, and every balance is the sum of its user's distinct clicks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from crypto_mine.common.names import Keys
from devstack.servers import MongoServer, RedisServer
from tests.support.api import Api
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 150
KEYS = 3000
REPEATS = 0.2
REWARD = 3
JOB_TIMEOUT = 8  # seconds: how soon RQ takes back the job of a killed worker (plus margins)


@dataclass
class Ledger:
    """What the clients were told: the keys accepted, with their clicks."""

    accepted: dict[tuple[str, str], int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    faults: list[str] = field(default_factory=list)


async def send(api: Api, ledger: Ledger, user: str, key: str, clicks: int) -> None:
    for _ in range(20):
        response = await api.click(user, key, {"clicks": clicks})
        ledger.statuses[response.status_code] += 1
        if response.status_code in (200, 202):
            ledger.accepted[(user, key)] = clicks
            return
        assert response.status_code in (429, 503), response.text
        await asyncio.sleep(0.2)
    raise AssertionError(f"click {user}/{key} never accepted")


async def chaos(
    worker: WorkerProcess, mongo: MongoServer, ledger: Ledger, until: asyncio.Event
) -> None:
    rng = random.Random(11)
    mongo_restarted = False
    while not until.is_set():
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        worker.kill_group()
        ledger.faults.append("worker SIGKILL")
        if not mongo_restarted and len(ledger.faults) >= 3:
            mongo.kill9()
            await asyncio.sleep(1)
            await asyncio.to_thread(mongo.start)
            ledger.faults.append("mongodb SIGKILL + restart")
            mongo_restarted = True
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await asyncio.to_thread(worker.start)


async def test_exactly_once_while_workers_and_mongodb_die(
    start_api: Any, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    api: Api = await start_api(
        MONGODB_URI=mongo.uri,
        MONGODB_DB="faults",
        MINING_JOB_TIMEOUT_SECONDS=JOB_TIMEOUT,
        MINING_RATE_LIMIT_PER_USER=1000,
        MINING_RATE_LIMIT_USER_BURST=1000,
        MINING_RATE_LIMIT_GLOBAL=100_000,
        MINING_RATE_LIMIT_GLOBAL_BURST=100_000,
        MINING_RATE_LIMIT_PER_IP=100_000,
        MINING_RATE_LIMIT_IP_BURST=100_000,
        MINING_QUEUE_MAX_DEPTH=100_000,
    )
    worker = WorkerProcess(
        tmp_path / "worker",
        redis_server.url,
        mongo.uri,
        "faults",
        MINING_WORKER_CONCURRENCY=2,
        MINING_REWARD_PER_CLICK=REWARD,
        MINING_WORKER_HEARTBEAT_MARGIN=2,
        MINING_WORKER_MAINTENANCE_INTERVAL=2,
        MINING_WORKER_TTL=16,
        MINING_WORKER_RETRY_BUDGET=5,
        DB_SERVER_SELECTION_TIMEOUT=1000,
    ).start()
    ledger = Ledger()
    rng = random.Random(5)
    clicks = [(f"u{rng.randrange(USERS)}", f"k{n}", rng.randint(1, 3)) for n in range(KEYS)]
    repeats = rng.sample(clicks, int(KEYS * REPEATS))
    stop = asyncio.Event()
    chaos_task = asyncio.create_task(chaos(worker, mongo, ledger, stop))
    started = time.monotonic()
    try:
        queue = clicks + repeats
        rng.shuffle(queue)
        for offset in range(0, len(queue), 60):  # about 30 s of load
            await asyncio.gather(*(send(api, ledger, *c) for c in queue[offset : offset + 60]))
            await asyncio.sleep(0.5)
        # Keep faults coming for a while after the last click, then let it heal.
        await asyncio.sleep(3)
        stop.set()
        await chaos_task
        if not worker.alive():
            worker.start()

        def drained() -> bool:
            return redis_client.get(Keys.queue_depth) == "0"

        await eventually(drained, 240, "queue drained")
        elapsed = time.monotonic() - started

        pending = [
            (user, key)
            for (user, key) in ledger.accepted
            if redis_client.hget(Keys.click(user, key), "s") != "completed"
        ]
        assert pending == [], f"{len(pending)} accepted clicks not completed"

        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
        try:
            database = client["faults"]
            docs = list(database["clicks"].find({}, {"user": 1, "key": 1, "clicks": 1, "batch": 1}))
            balances = {d["_id"]: d for d in database["balances"].find()}
        finally:
            client.close()
        applied = [(d["user"], d["key"]) for d in docs]
        batches_run = {d["batch"] for d in docs}
        assert len(applied) == len(set(applied)), "a click was stored twice"
        assert set(applied) == set(ledger.accepted), "stored clicks differ from accepted ones"
        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (user, _), count in ledger.accepted.items():
            expected[user][0] += count * REWARD
            expected[user][1] += count
        actual = {user: [doc["balance"], doc["clicks"]] for user, doc in balances.items()}
        assert actual == dict(expected), "a balance differs from the sum of its distinct clicks"
        # Marks left by killed processes before their deferred unmarking are garbage: they only
        # keep their own batch from applying again. Each must name a batch that ran.
        leftover = {batch for doc in balances.values() for batch in doc.get("applying", {})}
        assert leftover <= batches_run, leftover - batches_run
        print(
            f"\nfault injection: {sum(ledger.statuses.values())} requests "
            f"{dict(ledger.statuses)}, {len(ledger.accepted)} distinct clicks accepted, "
            f"{len(ledger.faults)} faults ({ledger.faults.count('worker SIGKILL')} worker kills, "
            f"1 MongoDB restart), drained after {elapsed:.0f}s: lost 0, doubled 0; "
            f"{len(batches_run)} jobs, {len(leftover)} with marks left by killed processes"
        )
    finally:
        stop.set()
        if not chaos_task.done():
            await chaos_task
        worker.stop()
        mongo.stop()
