"""The RQ worker of the click queue: no fork per job, tuned recovery, failure routing."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from crypto_mine.common.failures import PoisonJob, error_code
from crypto_mine.common.names import Keys

from . import metrics
from .settings import WorkerSettings

log = logging.getLogger(__name__)


def clicks_of(job: Job) -> int:
    """The clicks a job carries: noted when it was dead-lettered, in its arguments (jobs of
    older api versions), or still counted in the queue-jobs hash."""
    if "clicks" in job.meta:
        return int(job.meta["clicks"])
    try:
        args = job.args
    except Exception:  # an undecodable payload carries no countable clicks
        return 0
    if args and isinstance(args[0], list):
        return len(args[0])
    carried = job.connection.hget(Keys.queue_jobs, job.id)
    return int(carried) if carried else 0


def route_failure(
    job: Job,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """Poison goes to the dead-letter (failed) registry; anything else is retried."""
    code = error_code(exc_value) if exc_value is not None else "unknown"
    clicks = exc_value.clicks if isinstance(exc_value, PoisonJob) else clicks_of(job)
    metrics.FAILED.labels(code).inc(clicks or 1)
    if isinstance(exc_value, PoisonJob):
        job.retries_left = 0
        job.meta["error_code"] = code
        job.meta["clicks"] = clicks
        job.save_meta()  # type: ignore[no-untyped-call]
        log.error("job %s dead-lettered: %s", job.id, exc_value, extra={"jobId": job.id})
    else:
        job.retries_left = max(job.retries_left or 0, 1)
        job.retry_intervals = None
        log.warning(
            "job %s will be retried after %s",
            job.id,
            exc_type.__name__ if exc_type else "?",
            extra={"jobId": job.id, "errorCode": code},
        )


class ClickWorker(SimpleWorker):
    """A SimpleWorker whose crash detection follows the job timeout closely."""

    def __init__(self, *args: Any, settings: WorkerSettings, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("worker_ttl", settings.worker_ttl_seconds)
        kwargs.setdefault("maintenance_interval", settings.maintenance_interval_seconds)
        kwargs.setdefault("exception_handlers", [route_failure])
        super().__init__(*args, **kwargs)
        self.heartbeat_margin = settings.heartbeat_margin_seconds

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a started job may go silent before another worker takes it back."""
        return int(job.timeout or self.worker_ttl) + self.heartbeat_margin
