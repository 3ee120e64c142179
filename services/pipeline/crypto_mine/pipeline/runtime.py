"""The click pipeline of one process: its clients and the batch runner built on them.

The worker (``crypto_mine.worker.jobs``) and the api's ``USE_QUEUE=false`` mode
(``crypto_mine.api.admission.inline``) both build one with :meth:`Pipeline.from_settings` and
close it when they stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from redis import Redis

from crypto_mine.common.mongo import Document, mongo_client
from crypto_mine.common.names import ShardKeys
from crypto_mine.common.redis import redis_client
from crypto_mine.common.retry import Backoff
from crypto_mine.common.settings import MongoSettings, RedisSettings

from .batches import BatchRunner
from .events import EventSettings
from .ledger import Ledger
from .outcomes import OutcomeRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineSettings:
    """What a batch's run needs, whichever service runs it."""

    redis: RedisSettings  # the Redis of the shard whose batches are run
    mongo: MongoSettings
    reward_per_click: int
    status_cache_ttl_seconds: int
    idempotency_window_seconds: int
    events: EventSettings
    retry_budget_seconds: float  # how long MongoDB and Redis are retried within one run
    backoff: Backoff = field(default_factory=Backoff)
    shard: int = 0


class Pipeline:
    """A Redis client, a MongoDB client, and the :class:`BatchRunner` that uses them."""

    def __init__(self, redis: Redis, mongo: MongoClient[Document], runner: BatchRunner) -> None:
        self.redis = redis
        self.mongo = mongo
        self.runner = runner

    @classmethod
    def from_settings(
        cls,
        settings: PipelineSettings,
        passthrough: tuple[type[BaseException], ...] = (),
        **mongo_options: Any,
    ) -> Pipeline:
        """``passthrough``: exceptions a run lets through untouched (the worker's job timeout);
        ``mongo_options`` go to pymongo (e.g. ``event_listeners``)."""
        redis = redis_client(settings.redis)
        mongo = mongo_client(settings.mongo, **mongo_options)
        ledger = Ledger(mongo[settings.mongo.database], settings.reward_per_click)
        recorder = OutcomeRecorder(
            redis,
            settings.status_cache_ttl_seconds,
            settings.events,
            settings.idempotency_window_seconds,
            ShardKeys(settings.shard),
        )
        runner = BatchRunner(
            ledger, recorder, settings.backoff, settings.retry_budget_seconds, passthrough
        )
        return cls(redis, mongo, runner)

    @property
    def ledger(self) -> Ledger:
        return self.runner.ledger

    def close(self) -> None:
        """Flush the ledger's deferred writes (best effort: they are housekeeping), then close."""
        try:
            self.ledger.flush()
        except Exception as error:
            log.warning("ledger flush at close failed: %s", error)
        self.mongo.close()
        self.redis.close()
