"""The job function the api enqueues by dotted path: apply one batch of clicks.

``crypto_mine.worker.jobs.apply_clicks`` applies the clicks the api gathered in one job and runs
them through the shared :class:`crypto_mine.common.batches.BatchApplier`
(the api's inline mode runs the same code). MongoDB and Redis are retried with backoff while
the retry budget lasts; after that the job goes back to the queue (transient) or to the
dead-letter registry (poison).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from crypto_mine.common import batches
from crypto_mine.common.ledger import Ledger
from crypto_mine.common.mongo import mongo_client
from crypto_mine.common.names import ShardKeys
from crypto_mine.common.outcomes import Outcomes
from crypto_mine.common.redis import redis_client

from . import metrics
from .settings import WorkerSettings

log = logging.getLogger(__name__)


class BatchApplier:
    """Per-process state: clients, the shared batch applier, and the worker's metrics."""

    def __init__(self, settings: WorkerSettings, **mongo_options: Any) -> None:
        self.settings = settings
        self.redis = redis_client(settings.redis)
        self.mongo = mongo_client(settings.mongo, **mongo_options)
        self.ledger = Ledger(self.mongo[settings.mongo.database], settings.reward_per_click)
        self.outcomes = Outcomes(
            self.redis,
            settings.status_cache_ttl_seconds,
            settings.events,
            settings.idempotency_window_seconds,
            ShardKeys(settings.shard),
        )
        self.batches = batches.BatchApplier(
            self.ledger,
            self.outcomes,
            settings.backoff,
            settings.retry_budget_seconds,
            passthrough=(JobTimeoutException,),
        )

    def close(self) -> None:
        """Flush the ledger's deferred writes (best effort: they are housekeeping), then close."""
        try:
            self.ledger.flush()
        except Exception as error:
            log.warning("ledger flush at close failed: %s", error)
        self.mongo.close()
        self.redis.close()

    def apply(self, batch: str, payload: Any, enqueued_at: datetime | None) -> dict[str, int]:
        started = time.perf_counter()
        lag = (datetime.now(UTC) - enqueued_at).total_seconds() if enqueued_at else 0.0
        metrics.JOB_LAG.observe(max(0.0, lag))
        result = self.batches.apply_job(batch, payload)
        metrics.PROCESSED.inc(result.fresh)
        metrics.DUPLICATES.inc(result.duplicates)
        if result.failures:
            metrics.FAILED.labels("invalid_click").inc(len(result.failures))
        metrics.BATCH_CLICKS.observe(result.clicks + len(result.failures))
        duration = time.perf_counter() - started
        metrics.BATCH_SECONDS.observe(duration)
        log.info(
            "batch applied",
            extra={
                "jobId": batch,
                "clicks": result.clicks,
                "applied": result.fresh,
                "duplicates": result.duplicates,
                "failed": len(result.failures),
                "users": result.users,
                "durationMs": round(1000 * duration, 2),
                "lagSeconds": round(lag, 3),
            },
        )
        return {
            "applied": result.fresh,
            "duplicates": result.duplicates,
            "failed": len(result.failures),
        }


@cache
def applier() -> BatchApplier:
    return BatchApplier(WorkerSettings.from_env())


def apply_clicks(clicks: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Apply one job's clicks; the RQ job's id is the batch id that makes repeats harmless.

    The clicks are in the job's click list (``Keys.batch``); ``clicks`` is only given by jobs
    that carry them in their arguments (enqueued by an older api during an upgrade).
    """
    job = get_current_job()
    batch = job.id if job is not None else uuid.uuid4().hex
    return applier().apply(batch, clicks, job.enqueued_at if job is not None else None)
