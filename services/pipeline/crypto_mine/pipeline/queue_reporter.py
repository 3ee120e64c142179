"""Queue-wide gauges, exported by one process at a time, api or worker.

``mining_click_queue_depth``, ``mining_worker_lag_seconds`` and ``mining_queue_dead_letters``
describe the whole queue, so
exactly one exporter must hold them, or ``sum()`` over pods would multiply them. api pods and
worker pods compete for a short Redis lease; the holder exports, the others stay silent. The
api taking part keeps the depth exported while no worker runs, so an autoscaler reading it from
Prometheus can start the first worker (scale from zero) and the backlog alert still fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from crypto_mine.common import scripts
from crypto_mine.common.names import Metrics, ShardKeys

from .queue_stats import QueueStats, read_stats

log = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_SECONDS = 5

# Take the lease if free, or keep it if ours; answer whether we hold it.
LEASE_SCRIPT = scripts.load(__package__, "queue_lease.lua")


def queue_gauges(readings: list[QueueStats], sharded: bool) -> list[GaugeMetricFamily]:
    """The queue-wide gauges of readings of queues; when ``sharded``, labelled with each
    shard's queue (``queue``), else with no label, as a deployment that never sharded."""
    labels = ["queue"] if sharded else []
    families = [
        GaugeMetricFamily(
            Metrics.queue_depth, "Clicks accepted and not yet applied.", labels=labels
        ),
        GaugeMetricFamily(
            Metrics.worker_lag, "Age of the oldest job waiting in the queue.", labels=labels
        ),
        GaugeMetricFamily(
            Metrics.dead_letters, "Jobs parked in the dead-letter (failed) registry.", labels=labels
        ),
    ]
    for stats in readings:
        values = (stats.depth, stats.lag_seconds, stats.failed)
        for family, value in zip(families, values, strict=True):
            family.add_metric([stats.queue] if sharded else [], value)
    return families


class _Fixed(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


class AsyncQueueReporter:
    """The lease held from an asyncio task (the api); ``exposition()`` while it is held.

    Every process of one pod uses the pod's identity, so whichever process a scrape reaches
    answers alike.
    """

    def __init__(self, redis: Redis, identity: str, shard: int = 0) -> None:
        self.redis = redis
        self.identity = identity
        self.shard = shard
        self.keys = ShardKeys(shard)
        self.lease = redis.register_script(LEASE_SCRIPT)
        self.leader = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> AsyncQueueReporter:
        self._task = asyncio.get_running_loop().create_task(self._renew())
        return self

    async def stop(self) -> None:
        # A flag, not a cancellation: a Redis call cut short by one can swallow it.
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=RENEW_SECONDS)
        if self.leader:
            self.leader = False
            with contextlib.suppress(RedisError, OSError):
                if await self.redis.get(self.keys.depth_reporter) in (
                    self.identity,
                    self.identity.encode(),
                ):
                    await self.redis.delete(self.keys.depth_reporter)

    async def renew(self) -> bool:
        try:
            held = await self.lease(
                keys=[self.keys.depth_reporter], args=[self.identity, LEASE_SECONDS]
            )
        except (RedisError, OSError) as error:
            log.warning("queue reporter lease not renewed: %s", error)
            held = 0
        self.leader = bool(held)
        return self.leader

    async def _renew(self) -> None:
        while not self._stopping.is_set():
            await self.renew()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RENEW_SECONDS)

    async def reading(self) -> QueueStats | None:
        """The shard's queue while the lease is held, else None."""
        if not self.leader:
            return None
        try:
            return await read_stats(self.redis, self.shard)
        except (RedisError, OSError) as error:
            log.warning("queue statistics unavailable: %s", error)
            return None


async def queue_exposition(reporters: list[AsyncQueueReporter]) -> bytes:
    """The gauges of the shards (one reporter each) whose lease this process holds."""
    readings = [stats for reporter in reporters if (stats := await reporter.reading())]
    if not readings:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(queue_gauges(readings, sharded=len(reporters) > 1)))
    return generate_latest(registry)
