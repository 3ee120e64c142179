"""What the click queue holds right now: depth in clicks, jobs, work in progress, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from crypto_mine.common.names import QUEUE_NAME, ShardKeys, queue_name


class ShardQueueKeys:
    """RQ's own key names for one shard's click queue (``names.queue_name``)."""

    def __init__(self, shard: int = 0) -> None:
        self.name = name = queue_name(shard)
        self.queue = Queue.redis_queue_namespace_prefix + name
        self.started = StartedJobRegistry.key_template.format(name)
        self.failed = FailedJobRegistry.key_template.format(name)
        self.workers = WORKERS_BY_QUEUE_KEY % name

    @staticmethod
    def job(job_id: str) -> str:
        return Job.redis_job_namespace_prefix + job_id


# Shard 0's, the only ones of a deployment that does not shard.
QueueKeys = ShardQueueKeys(0)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int  # clicks accepted and not yet applied
    jobs: int  # jobs waiting in the queue
    in_progress: int  # jobs a worker has started
    failed: int  # jobs parked in the dead-letter (failed) registry
    workers: int
    lag_seconds: float  # age of the oldest waiting job
    shards: tuple[QueueStats, ...] = ()  # each shard's queue, when there are several

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        shards = {"shards": [shard.to_json() for shard in self.shards]} if self.shards else {}
        return {
            "queue": body["queue"],
            "depth": body["depth"],
            "jobs": body["jobs"],
            "inProgress": body["in_progress"],
            "failed": body["failed"],
            "workers": body["workers"],
            "lagSeconds": body["lag_seconds"],
            **shards,
        }


def _parse_time(raw: bytes | str | None) -> datetime | None:
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC)
    except ValueError:
        return None


async def read_stats(redis: Redis, shard: int = 0) -> QueueStats:
    """Two round trips: the counters, then the age of the oldest waiting job."""
    keys, queue = ShardKeys(shard), ShardQueueKeys(shard)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.queue_depth)
        pipe.llen(queue.queue)
        pipe.zcard(queue.started)
        pipe.zcard(queue.failed)
        pipe.scard(queue.workers)
        pipe.lindex(queue.queue, 0)
        depth, jobs, started, failed, workers, oldest = await pipe.execute()
    lag = 0.0
    if oldest:
        job_id = oldest.decode() if isinstance(oldest, bytes) else oldest
        enqueued = _parse_time(await redis.hget(queue.job(job_id), "enqueued_at"))
        if enqueued:
            lag = max(0.0, (datetime.now(UTC) - enqueued).total_seconds())
    return QueueStats(
        queue=queue.name,
        depth=int(depth or 0),
        jobs=int(jobs),
        in_progress=int(started),
        failed=int(failed),
        workers=int(workers),
        lag_seconds=round(lag, 3),
    )


async def read_all(shards: Sequence[tuple[Redis, int]]) -> QueueStats:
    """Every shard's queue, as one: counts summed, the oldest job's lag; with more than one
    shard, each shard's own numbers under ``shards``."""
    readings = await asyncio.gather(*(read_stats(redis, shard) for redis, shard in shards))
    if len(readings) == 1:
        return readings[0]
    return QueueStats(
        queue=QUEUE_NAME,
        depth=sum(r.depth for r in readings),
        jobs=sum(r.jobs for r in readings),
        in_progress=sum(r.in_progress for r in readings),
        failed=sum(r.failed for r in readings),
        workers=sum(r.workers for r in readings),
        lag_seconds=max(r.lag_seconds for r in readings),
        shards=tuple(readings),
    )
