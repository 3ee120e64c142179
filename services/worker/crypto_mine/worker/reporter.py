"""Queue-wide gauges from a worker pod, while it holds the reporter lease.

The lease and the gauges are ``crypto_mine.pipeline.queue_reporter``'s (the api takes part too);
this is the worker's side, renewed from a thread beside its synchronous processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from crypto_mine.common.names import ShardKeys
from crypto_mine.common.redis import async_redis_client
from crypto_mine.common.settings import RedisSettings
from crypto_mine.pipeline.queue_reporter import (
    LEASE_SCRIPT,
    LEASE_SECONDS,
    RENEW_SECONDS,
    queue_gauges,
)
from crypto_mine.pipeline.queue_stats import QueueStats, read_stats

log = logging.getLogger(__name__)


class QueueReporter(Collector):
    def __init__(
        self, redis: Redis, settings: RedisSettings, shard: int = 0, shards: int = 1
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.shard = shard
        self.sharded = shards > 1
        self.keys = ShardKeys(shard)
        self.identity = uuid.uuid4().hex
        self.lease = redis.register_script(LEASE_SCRIPT)
        self.leader = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="queue-reporter", daemon=True)

    def start(self) -> QueueReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(RENEW_SECONDS + 1)
        if self.leader:
            with contextlib.suppress(RedisError):
                self.redis.delete(self.keys.depth_reporter)

    def _renew(self) -> None:
        while not self._stop.is_set():
            try:
                self.leader = bool(
                    self.lease(keys=[self.keys.depth_reporter], args=[self.identity, LEASE_SECONDS])
                )
            except RedisError as error:
                log.warning("queue reporter lease not renewed: %s", error)
                self.leader = False
            self._stop.wait(RENEW_SECONDS)

    def _stats(self) -> QueueStats:
        async def read() -> QueueStats:
            client = async_redis_client(self.settings)
            try:
                return await read_stats(client, self.shard)
            finally:
                await client.aclose()

        return asyncio.run(read())

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if not self.leader:
            return
        try:
            stats = self._stats()
        except RedisError as error:
            log.warning("queue statistics unavailable: %s", error)
            return
        yield from queue_gauges([stats], self.sharded)
