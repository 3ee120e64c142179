"""The RQ worker of the click queue: no fork per job, tuned recovery, failure routing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rq import worker_registration
from rq.job import Job
from rq.registry import clean_registries
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker

from crypto_mine.common.names import ShardKeys, shard_of_queue
from crypto_mine.pipeline.failures import PoisonJob, error_code

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
    carried = job.connection.hget(ShardKeys(shard_of_queue(job.origin)).queue_jobs, job.id)
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

    def __init__(
        self,
        *args: Any,
        settings: WorkerSettings,
        after_sweep: Callable[[], object] | None = None,
        **kwargs: Any,
    ) -> None:
        """``after_sweep`` runs after each recovery sweep this worker ran (not after those it
        found another worker running); its errors are logged, never raised."""
        self.after_sweep = after_sweep
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("worker_ttl", settings.worker_ttl_seconds)
        kwargs.setdefault("maintenance_interval", settings.maintenance_interval_seconds)
        kwargs.setdefault("exception_handlers", [route_failure])
        super().__init__(*args, **kwargs)
        self.heartbeat_margin = settings.heartbeat_margin_seconds

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a started job may go silent before another worker takes it back."""
        return int(job.timeout or self.worker_ttl) + self.heartbeat_margin

    def clean_registries(self) -> None:
        """RQ's recovery sweep, under a lock that a dead worker cannot hold for long.

        RQ takes each queue's cleaning lock for 899 s and releases it only when the sweep ends:
        a worker killed (or cut off from Redis) in the middle of a sweep kept every other worker
        from taking back the jobs of dead workers for 15 minutes, and their clicks stayed queued.
        Here the lock lives one maintenance interval and is released whatever happens; two
        sweeps overlapping is harmless, a batch may run twice.
        """
        ttl = max(1, int(self.maintenance_interval))
        swept = False
        for queue in self.queues:
            if not self.connection.set(queue.registry_cleaning_key, 1, nx=True, ex=ttl):
                continue
            try:
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
                if self.after_sweep is not None and not swept:
                    swept = True
                    try:
                        self.after_sweep()
                    except Exception as error:
                        log.warning("after the recovery sweep: %s", error)
            finally:
                self.connection.delete(queue.registry_cleaning_key)
        self.last_cleaned_at = now()  # type: ignore[assignment]
