"""``crypto-mine-queue``: what the click queue holds, as a table or as JSON.

Depth in clicks, jobs waiting and in progress, dead-lettered jobs with their error codes,
workers and lag.
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

from crypto_mine.common.names import QUEUE_NAME
from crypto_mine.common.queue_stats import read_stats
from crypto_mine.common.redis import async_redis_client, redis_client
from crypto_mine.common.settings import Env, RedisSettings

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


def snapshot(settings: RedisSettings) -> dict[str, Any]:
    async def stats() -> dict[str, Any]:
        client = async_redis_client(settings)
        try:
            return (await read_stats(client)).to_json()
        finally:
            await client.aclose()

    connection: Redis = redis_client(settings)
    try:
        queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crypto-mine-queue", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    data = snapshot(RedisSettings.from_env(Env()))
    sys.stdout.write((json.dumps(data, indent=2) if args.json else table(data)) + "\n")


if __name__ == "__main__":
    main()
