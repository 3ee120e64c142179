"""The job function the api enqueues by dotted path: apply one batch of clicks.

``crypto_mine.worker.jobs.apply_clicks`` runs the clicks the api gathered in one job through the
process's :class:`crypto_mine.pipeline.runtime.Pipeline` (the api's inline mode runs the same
code), with the worker's metrics and log line around the run. MongoDB and Redis are retried with
backoff while the retry budget lasts; after that the job goes back to the queue (transient) or
to the dead-letter registry (poison).
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

from crypto_mine.pipeline.runtime import Pipeline

from . import metrics
from .settings import WorkerSettings

log = logging.getLogger(__name__)


@cache
def pipeline() -> Pipeline:
    """The worker process's pipeline, made on its first job (closed by the process at exit)."""
    settings = WorkerSettings.from_env()
    return Pipeline.from_settings(settings.pipeline, passthrough=(JobTimeoutException,))


def run_observed(
    runtime: Pipeline, batch: str, payload: Any, enqueued_at: datetime | None
) -> dict[str, int]:
    """Run one batch, with the worker's metrics and log line; the job's result."""
    started = time.perf_counter()
    lag = (datetime.now(UTC) - enqueued_at).total_seconds() if enqueued_at else 0.0
    metrics.JOB_LAG.observe(max(0.0, lag))
    result = runtime.runner.run_job(batch, payload)
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


def apply_clicks(clicks: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Apply one job's clicks; the RQ job's id is the batch id that makes repeats harmless.

    The clicks are in the job's click list (``Keys.batch``); ``clicks`` is only given by jobs
    that carry them in their arguments (enqueued by an older api during an upgrade).
    """
    job = get_current_job()
    batch = job.id if job is not None else uuid.uuid4().hex
    return run_observed(pipeline(), batch, clicks, job.enqueued_at if job is not None else None)
