"""``crypto-mine-queue``: what the click queue holds, as a table or as JSON; and
``crypto-mine-queue requeue``: dead-lettered jobs back to the queue; and
``crypto-mine-queue redis``: what an operator needs to know of that Redis.

Depth in clicks, jobs waiting and in progress, dead-lettered jobs with their error codes,
workers and lag. Run it where ``REDIS_URL`` names the queue's Redis (in a worker pod, with
``kubectl exec``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from crypto_mine.common.names import queue_name
from crypto_mine.common.redis import async_redis_client, redis_client
from crypto_mine.common.settings import Env, RedisSettings
from crypto_mine.pipeline.queue_stats import read_stats

from .worker import clicks_of

SHOWN = 20


def _when(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def _failure(job: Job) -> dict[str, Any]:
    result = job.latest_result()
    reason = (result.exc_string or "").strip().splitlines()[-1:] if result else []
    return {
        "id": job.id,
        "errorCode": job.meta.get("error_code", "unknown"),
        "reason": reason[0] if reason else None,
        "clicks": clicks_of(job),
        "failedAt": _when(job.ended_at),
    }


def snapshot(settings: RedisSettings, shard: int = 0) -> dict[str, Any]:
    async def stats() -> dict[str, Any]:
        client = async_redis_client(settings)
        try:
            return (await read_stats(client, shard)).to_json()
        finally:
            await client.aclose()

    connection: Redis = redis_client(settings)
    try:
        queue = Queue(queue_name(shard), connection=connection, serializer=JSONSerializer)
        failed_ids = FailedJobRegistry(queue=queue).get_job_ids()[-SHOWN:]
        started_ids = StartedJobRegistry(queue=queue).get_job_ids()[:SHOWN]
        failed = [job for job in Job.fetch_many(failed_ids, connection, JSONSerializer) if job]
        started = [job for job in Job.fetch_many(started_ids, connection, JSONSerializer) if job]
        workers = Worker.all(queue=queue)
        return {
            **asyncio.run(stats()),
            "inProgressJobs": [
                {
                    "id": j.id,
                    "worker": j.worker_name,
                    "startedAt": _when(j.started_at),
                    "clicks": clicks_of(j),
                }
                for j in started
            ],
            "deadLetters": [_failure(job) for job in failed],
            "workerList": [
                {
                    "name": w.name,
                    "state": str(w.get_state()),
                    "lastHeartbeat": _when(w.last_heartbeat),
                }
                for w in workers
            ],
        }
    finally:
        connection.close()


def table(data: dict[str, Any]) -> str:
    lines = [
        f"queue        {data['queue']}",
        f"depth        {data['depth']} clicks",
        f"jobs         {data['jobs']} waiting, {data['inProgress']} in progress",
        f"dead letters {data['failed']}",
        f"workers      {data['workers']}",
        f"lag          {data['lagSeconds']:.1f} s",
    ]
    if data["inProgressJobs"]:
        lines += ["", "IN PROGRESS  job id                            clicks  worker"]
        lines += [
            f"             {j['id']:<34}{j['clicks']:>6}  {j['worker']}"
            for j in data["inProgressJobs"]
        ]
    if data["deadLetters"]:
        lines += [
            "",
            "DEAD LETTERS job id                            clicks  error code        reason",
        ]
        lines += [
            f"             {d['id']:<34}{d['clicks']:>6}  {d['errorCode']:<17} {d['reason'] or ''}"
            for d in data["deadLetters"]
        ]
    if data["workerList"]:
        lines += ["", "WORKERS      name                              state     last heartbeat"]
        lines += [
            f"             {w['name']:<34}{w['state']:<10}{w['lastHeartbeat'] or ''}"
            for w in data["workerList"]
        ]
    return "\n".join(lines)


# INFO fields that tell whether Redis can keep the queue: memory and its limit, the eviction
# policy (anything but noeviction may drop queued clicks), persistence, load.
REDIS_FIELDS = (
    "redis_version",
    "used_memory_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
    "evicted_keys",
    "aof_enabled",
    "aof_last_write_status",
    "aof_rewrite_in_progress",
    "rdb_last_bgsave_status",
    "connected_clients",
    "blocked_clients",
    "instantaneous_ops_per_sec",
)


def redis_info(settings: RedisSettings) -> dict[str, Any]:
    """The fields of REDIS_FIELDS from INFO (missing ones as None)."""
    connection: Redis = redis_client(settings)
    try:
        info = connection.info("all")
    finally:
        connection.close()
    return {field: info.get(field) for field in REDIS_FIELDS}


def requeue(settings: RedisSettings, job_ids: list[str], shard: int = 0) -> list[str]:
    """Move dead-lettered jobs (all when ``job_ids`` is empty) back to the queue."""
    connection: Redis = redis_client(settings)
    try:
        queue = Queue(queue_name(shard), connection=connection, serializer=JSONSerializer)
        registry = FailedJobRegistry(queue=queue)
        chosen = job_ids or registry.get_job_ids()
        dead = set(registry.get_job_ids())
        missing = [job_id for job_id in chosen if job_id not in dead]
        if missing:
            raise SystemExit(f"not dead-lettered: {', '.join(missing)}")
        for job_id in chosen:
            registry.requeue(job_id)
        return chosen
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crypto-mine-queue", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--shard",
        type=int,
        default=None,
        help="the click shard (default: MINING_SHARD, else 0), of REDIS_SHARD_URLS",
    )
    commands = parser.add_subparsers(dest="command")
    again = commands.add_parser("requeue", help="move dead-lettered jobs back to the queue")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every dead-lettered job")
    which.add_argument("job_ids", nargs="*", default=[], metavar="JOB_ID", help="these jobs")
    commands.add_parser("redis", help="memory, eviction policy, persistence, clients of Redis")
    args = parser.parse_args(argv)
    env = Env()
    shard = args.shard if args.shard is not None else env.int("MINING_SHARD", 0, min=0)
    settings = RedisSettings.from_env(env).shard(shard)
    if args.command == "redis":
        info = redis_info(settings)
        if args.json:
            sys.stdout.write(json.dumps(info, indent=2) + "\n")
        else:
            sys.stdout.write("".join(f"{key:<26} {value}\n" for key, value in info.items()))
        return
    if args.command == "requeue":
        done = requeue(settings, [] if args.all else args.job_ids, shard)
        sys.stdout.write(f"requeued {len(done)} job(s)" + "".join(f"\n  {j}" for j in done) + "\n")
        return
    data = snapshot(settings, shard)
    sys.stdout.write((json.dumps(data, indent=2) if args.json else table(data)) + "\n")


if __name__ == "__main__":
    main()
