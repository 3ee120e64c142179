"""How fast one worker process applies clicks, next to raw ``insert_many`` of the same documents.

    python -m tests.worker.bench_worker [--clicks N] [--users U] [--batch B] [--json]

Starts its own Redis and MongoDB (nx-27017) servers. The clicks go through the api's real
admission (so jobs, click records and the depth counter are what production makes), then one
in-process ClickWorker drains the queue. MongoDB commands are counted with pymongo's command
monitoring. The baseline inserts the same click documents with ``insert_many(ordered=False)`` in
chunks of the same size into a collection with the same unique index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import redis
from pymongo import ASCENDING, MongoClient, UpdateOne, monitoring
from rq import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from bench.probes import cpu_seconds
from crypto_mine.api.admission.admission import Admitter, ClickRequest
from crypto_mine.api.admission.applied import AppliedClicks
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.mongo import async_mongo_client
from crypto_mine.common.names import QUEUE_NAME, Keys
from crypto_mine.common.redis import async_redis_client
from crypto_mine.common.settings import Env
from crypto_mine.pipeline.ledger import click_id
from crypto_mine.pipeline.runtime import Pipeline
from crypto_mine.worker import jobs
from crypto_mine.worker.settings import WorkerSettings
from crypto_mine.worker.worker import ClickWorker
from devstack.servers import MongoServer, RedisServer

WRITES = {"insert", "update", "delete", "findAndModify"}


class CommandCounter(monitoring.CommandListener):
    """Counts MongoDB commands and the documents written by them."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.documents: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        # "n": documents inserted, or documents matched + upserted by the update statements.
        if event.command_name in WRITES:
            self.documents[event.command_name] += int(event.reply.get("n", 0))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def environment(redis_url: str, mongo_uri: str, batch: int) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "MONGODB_URI": mongo_uri,
        "MONGODB_DB": "bench",
        "JWT_SECRET": "bench-secret-that-is-long-enough-0123456789",
        "MINING_RATE_LIMIT_GLOBAL": "1000000",
        "MINING_RATE_LIMIT_GLOBAL_BURST": "1000000",
        "MINING_RATE_LIMIT_PER_USER": "1000000",
        "MINING_RATE_LIMIT_USER_BURST": "1000000",
        "MINING_RATE_LIMIT_PER_IP": "1000000",
        "MINING_RATE_LIMIT_IP_BURST": "1000000",
        "MINING_QUEUE_MAX_DEPTH": "10000000",
        "MINING_BATCH_MAX_CLICKS": str(batch),
        "MINING_JOB_MAX_CLICKS": str(batch),
        "MINING_BATCH_CONCURRENCY": "1",
        "MINING_ADMISSION_TIMEOUT": "60",
    }


async def enqueue(settings: ApiSettings, count: int, users: int) -> None:
    client = async_redis_client(settings.redis, decode_responses=True)
    mongo = async_mongo_client(settings.mongo)
    applied = AppliedClicks(mongo[settings.mongo.database], settings.idempotency.lookup_timeout)
    admitter = Admitter(client, settings, applied)
    try:
        clicks = [
            ClickRequest(user_id=f"u{n % users}", ip="10.0.0.1", key=f"k{n}", clicks=1)
            for n in range(count)
        ]
        await asyncio.gather(*(admitter.admit(click) for click in clicks))
    finally:
        await admitter.close()
        await client.aclose()
        await mongo.close()


def drain(redis_url: str, counter: CommandCounter) -> tuple[float, int]:
    settings = WorkerSettings.from_env()
    pipeline = Pipeline.from_settings(
        settings.pipeline, passthrough=(JobTimeoutException,), event_listeners=[counter]
    )
    jobs.pipeline = cache(lambda: pipeline)
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    worker = ClickWorker([queue], connection=connection, settings=settings)
    jobs_count = queue.count
    started = time.perf_counter()
    # Bounded: a job that keeps failing goes back to the queue, and a burst would never end.
    worker.work(
        burst=True, with_scheduler=False, logging_level="WARNING", max_jobs=3 * jobs_count + 10
    )
    elapsed = time.perf_counter() - started
    assert connection.get(Keys.queue_depth) == b"0", "the queue did not drain"
    pipeline.close()
    connection.close()
    return elapsed, jobs_count


def raw_insert(
    mongo_uri: str, count: int, users: int, batch: int, with_balances: bool = False
) -> float:
    """``insert_many`` of the click documents in chunks; ``with_balances``: plus, per chunk,
    one unguarded ``$inc`` upsert per user and a read of those balances — the fewest writes
    any design needs (a click and its user's balance), without the exactly-once guard."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    database = client["bench_floor" if with_balances else "bench_raw"]
    collection = database["clicks"]
    collection.drop()
    database["balances"].drop()
    collection.create_index([("user", ASCENDING), ("key", ASCENDING)], unique=True)
    now = datetime.now(UTC)
    docs = [
        {
            "_id": click_id(f"u{n % users}", f"k{n}"),
            "user": f"u{n % users}",
            "key": f"k{n}",
            "clicks": 1,
            "reward": 1,
            "batch": f"b{n // batch}",
            "acceptedAt": now,
            "appliedAt": now,
        }
        for n in range(count)
    ]
    started = time.perf_counter()
    for offset in range(0, count, batch):
        chunk = docs[offset : offset + batch]
        collection.insert_many(chunk, ordered=False)
        if with_balances:
            totals = Counter(doc["user"] for doc in chunk)
            database["balances"].bulk_write(
                [
                    UpdateOne({"_id": user}, {"$inc": {"balance": n, "clicks": n}}, upsert=True)
                    for user, n in totals.items()
                ],
                ordered=False,
            )
            list(database["balances"].find({"_id": {"$in": list(totals)}}))
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def run(count: int, users: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as folder:
        redis_server = RedisServer(Path(folder) / "redis").start()
        mongo = MongoServer(Path(folder) / "mongo").start()
        try:
            env = environment(redis_server.url, mongo.uri, batch)
            os.environ.update(env)
            asyncio.run(enqueue(ApiSettings.from_env(Env(env)), count, users))
            counter = CommandCounter()
            server = [cpu_seconds(mongo.pid)]  # the MongoDB server's CPU before each phase
            worker_seconds, job_count = drain(redis_server.url, counter)
            server.append(cpu_seconds(mongo.pid))
            raw_seconds = raw_insert(mongo.uri, count, users, batch)
            server.append(cpu_seconds(mongo.pid))
            floor_seconds = raw_insert(mongo.uri, count, users, batch, with_balances=True)
            server.append(cpu_seconds(mongo.pid))
        finally:
            mongo.stop()
            redis_server.stop()
    applied = count / worker_seconds
    raw = count / raw_seconds
    writes = counter.documents["insert"] + counter.documents["update"]
    return {
        "clicks": count,
        "users": users,
        "jobs": job_count,
        "clicks_per_job": round(count / job_count, 1),
        "worker_clicks_per_second": round(applied),
        "raw_insert_many_docs_per_second": round(raw),
        "ratio": round(applied / raw, 3),
        "floor_clicks_per_second": round(count / floor_seconds),
        "ratio_to_floor": round(applied / (count / floor_seconds), 3),
        # CPU the MongoDB server spent in each phase; with nothing else costing any time, the
        # worker would reach raw insert_many's time over its own server time.
        "mongo_server_cpu_seconds": {
            "worker": round(server[1] - server[0], 2),
            "raw": round(server[2] - server[1], 2),
            "floor": round(server[3] - server[2], 2),
        },
        "server_bound_ratio": round(raw_seconds / max(server[1] - server[0], 0.01), 3),
        "mongo_commands_per_job": round(sum(counter.commands.values()) / job_count, 2),
        "mongo_documents_written_per_click": round(writes / count, 3),
        "mongo_commands": dict(counter.commands),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.clicks, args.users, args.batch)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['clicks']} clicks, {result['users']} users, {result['jobs']} jobs "
        f"({result['clicks_per_job']} clicks each), nx-27017 MongoDB"
    )
    print(f"  one worker process        {result['worker_clicks_per_second']:>8} clicks/s")
    print(f"  raw insert_many, same docs {result['raw_insert_many_docs_per_second']:>7} docs/s")
    print(f"  ratio                     {result['ratio']:>8}")
    print(f"  two-write floor (no guard) {result['floor_clicks_per_second']:>7} clicks/s")
    print(f"  ratio to that floor       {result['ratio_to_floor']:>8}")
    server = result["mongo_server_cpu_seconds"]
    print(
        f"  MongoDB server CPU        {server['worker']:>8} s (raw {server['raw']} s, "
        f"floor {server['floor']} s)"
    )
    print(f"  ratio if only it counted  {result['server_bound_ratio']:>8}")
    print(f"  MongoDB commands per job  {result['mongo_commands_per_job']:>8}")
    print(f"  documents written / click {result['mongo_documents_written_per_click']:>8}")


if __name__ == "__main__":
    main()
