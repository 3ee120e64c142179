"""What the click queue holds right now: depth in clicks, jobs, work in progress, dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from .names import QUEUE_NAME, Keys


class QueueKeys:
    """RQ's own key names for the click queue."""

    queue = Queue.redis_queue_namespace_prefix + QUEUE_NAME
    started = StartedJobRegistry.key_template.format(QUEUE_NAME)
    failed = FailedJobRegistry.key_template.format(QUEUE_NAME)
    workers = WORKERS_BY_QUEUE_KEY % QUEUE_NAME

    @staticmethod
    def job(job_id: str) -> str:
        return Job.redis_job_namespace_prefix + job_id


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int  # clicks accepted and not yet applied
    jobs: int  # jobs waiting in the queue
    in_progress: int  # jobs a worker has started
    failed: int  # jobs parked in the dead-letter (failed) registry
    workers: int
    lag_seconds: float  # age of the oldest waiting job

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        return {
            "queue": body["queue"],
            "depth": body["depth"],
            "jobs": body["jobs"],
            "inProgress": body["in_progress"],
            "failed": body["failed"],
            "workers": body["workers"],
            "lagSeconds": body["lag_seconds"],
        }


def _parse_time(raw: bytes | str | None) -> datetime | None:
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC)
    except ValueError:
        return None


async def read_stats(redis: Redis) -> QueueStats:
    """Two round trips: the counters, then the age of the oldest waiting job."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(Keys.queue_depth)
        pipe.llen(QueueKeys.queue)
        pipe.zcard(QueueKeys.started)
        pipe.zcard(QueueKeys.failed)
        pipe.scard(QueueKeys.workers)
        pipe.lindex(QueueKeys.queue, 0)
        depth, jobs, started, failed, workers, oldest = await pipe.execute()
    lag = 0.0
    if oldest:
        job_id = oldest.decode() if isinstance(oldest, bytes) else oldest
        enqueued = _parse_time(await redis.hget(QueueKeys.job(job_id), "enqueued_at"))
        if enqueued:
            lag = max(0.0, (datetime.now(UTC) - enqueued).total_seconds())
    return QueueStats(
        queue=QUEUE_NAME,
        depth=int(depth or 0),
        jobs=int(jobs),
        in_progress=int(started),
        failed=int(failed),
        workers=int(workers),
        lag_seconds=round(lag, 3),
    )
