"""The job function the api enqueues by dotted path: apply one batch of clicks.

``crypto_mine.worker.jobs.apply_clicks`` receives the clicks the api accepted in one admission
call. MongoDB and Redis are retried with backoff while the retry budget lasts; after that the
job goes back to the queue (transient) or to the dead-letter registry (poison).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from crypto_mine.common.metrics import REDIS_LATENCY
from crypto_mine.common.mongo import mongo_client
from crypto_mine.common.redis import redis_client
from crypto_mine.common.retry import retrying

from . import metrics
from .errors import PoisonJob, TransientFailure, error_code, is_transient
from .ledger import Applied, Click, Ledger
from .outcomes import Failure, Outcomes
from .settings import WorkerSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CLICKS = 1000


def parse(payload: Any) -> tuple[list[Click], list[Failure]]:
    """The valid clicks of a payload, and the invalid ones that can still be told apart."""
    if not isinstance(payload, list):
        raise PoisonJob(
            "invalid_payload", f"expected a list of clicks, got {type(payload).__name__}"
        )
    clicks: list[Click] = []
    failures: list[Failure] = []
    for item in payload:
        if not isinstance(item, dict):
            raise PoisonJob("invalid_payload", f"expected click objects, got {item!r:.80}")
        user, key, count, at = item.get("user"), item.get("key"), item.get("clicks"), item.get("at")
        if not isinstance(user, str) or not isinstance(key, str) or not user or not key:
            raise PoisonJob("invalid_payload", f"click without user or key: {item!r:.80}")
        click = Click(
            user, key, count if isinstance(count, int) else 0, at if isinstance(at, int) else 0
        )
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CLICKS:
            failures.append(Failure(click, "invalid_click"))
        else:
            clicks.append(click)
    return clicks, failures


class BatchApplier:
    """Per-process state: clients, the ledger and the outcome writer."""

    def __init__(self, settings: WorkerSettings, **mongo_options: Any) -> None:
        self.settings = settings
        self.redis = redis_client(settings.redis)
        self.mongo = mongo_client(settings.mongo, **mongo_options)
        self.ledger = Ledger(self.mongo[settings.mongo.database], settings.reward_per_click)
        self.outcomes = Outcomes(self.redis, settings.status_cache_ttl_seconds)
        self._indexed = False

    def close(self) -> None:
        self.mongo.close()
        self.redis.close()

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        try:
            return retrying(
                call, is_transient, self.settings.backoff, self.settings.retry_budget_seconds, what
            )
        except JobTimeoutException:
            raise
        except Exception as error:
            if is_transient(error):
                raise TransientFailure(error_code(error), error) from error
            raise

    def apply(self, batch: str, payload: Any, enqueued_at: datetime | None) -> dict[str, int]:
        started = time.perf_counter()
        lag = (datetime.now(UTC) - enqueued_at).total_seconds() if enqueued_at else 0.0
        metrics.JOB_LAG.observe(max(0.0, lag))
        try:
            clicks, failures = parse(payload)
        except PoisonJob:
            self._retrying(lambda: self.outcomes.record(batch, None, []), "redis")
            raise
        if not self._indexed:
            self._retrying(self.ledger.ensure_indexes, "mongodb")
            self._indexed = True
        try:
            applied: Applied | None = (
                self._retrying(lambda: self.ledger.apply(batch, clicks), "mongodb")
                if clicks
                else None
            )
        except (JobTimeoutException, TransientFailure):
            raise
        except Exception as error:
            code = error_code(error)
            log.exception("batch %s cannot be applied (%s)", batch, code)
            everything = failures + [Failure(click, code) for click in clicks]
            self._retrying(lambda: self.outcomes.record(batch, None, everything), "redis")
            raise PoisonJob(code, str(error)) from error
        redis_started = time.perf_counter()
        self._retrying(lambda: self.outcomes.record(batch, applied, failures), "redis")
        REDIS_LATENCY.labels("complete").observe(1000 * (time.perf_counter() - redis_started))
        fresh = applied.fresh if applied else 0
        duplicates = sum(o.duplicate for o in applied.outcomes) if applied else 0
        metrics.PROCESSED.inc(fresh)
        metrics.DUPLICATES.inc(duplicates)
        if failures:
            metrics.FAILED.labels("invalid_click").inc(len(failures))
        metrics.BATCH_CLICKS.observe(len(clicks) + len(failures))
        duration = time.perf_counter() - started
        metrics.BATCH_SECONDS.observe(duration)
        log.info(
            "batch applied",
            extra={
                "jobId": batch,
                "clicks": len(clicks),
                "applied": fresh,
                "duplicates": duplicates,
                "failed": len(failures),
                "users": len(applied.users) if applied else 0,
                "durationMs": round(1000 * duration, 2),
                "lagSeconds": round(lag, 3),
            },
        )
        return {"applied": fresh, "duplicates": duplicates, "failed": len(failures)}


@cache
def applier() -> BatchApplier:
    return BatchApplier(WorkerSettings.from_env())


def apply_clicks(clicks: list[dict[str, Any]]) -> dict[str, int]:
    """Apply one batch; the RQ job's id is the batch id that makes repeats harmless."""
    job = get_current_job()
    batch = job.id if job is not None else uuid.uuid4().hex
    return applier().apply(batch, clicks, job.enqueued_at if job is not None else None)
