"""``USE_QUEUE=false``: the api applies accepted clicks itself before answering.

For development and tests only: a click's answer then waits for MongoDB, which is what the
queue exists to avoid.

Admission does not change: the same one-round-trip script checks the limits, records the
idempotency key and enqueues the batch as an RQ job. Then, instead of waiting for a worker,
the api runs that job's clicks through the worker's own code
(:class:`crypto_mine.pipeline.runtime.Pipeline`: the ledger, then the outcome script, which
also takes the job's clicks off the depth counter and appends the events), and finally takes
the job off the RQ queue in one small script (``LREM`` + ``DEL``) unless a worker took it.

Why this design rather than admitting without enqueueing: nothing can be lost or applied
twice. If the api dies at any point, the job is still queued for a worker (or for the inline
run of a retry, below); if a worker takes the job meanwhile, both apply the same batch id,
which the ledger makes harmless, and the outcome script emits each event once. Limits,
idempotency and backpressure stay exactly those of queue mode.

Clicks admitted together share one job and one inline run. A repeat of a click whose record
is still ``queued`` (an earlier run failed) runs its job inline too, so retrying with the same
``Idempotency-Key`` completes it. pymongo and this Redis client block: each run goes to a worker
thread (``anyio.to_thread``), so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio
import anyio.to_thread
from rq.job import Job
from rq.queue import Queue

from crypto_mine.common import scripts
from crypto_mine.common.names import QUEUE_NAME
from crypto_mine.pipeline.failures import PoisonJob
from crypto_mine.pipeline.runtime import Pipeline

from .. import SCRIPTS
from ..settings import ApiSettings

log = logging.getLogger(__name__)

THREADS = 4


class InlineApplier:
    """Runs admitted jobs in the api process, one run per job however many clicks wait on it."""

    def __init__(self, settings: ApiSettings) -> None:
        self.pipeline = Pipeline.from_settings(settings.pipeline)
        self.dequeue = self.pipeline.redis.register_script(scripts.load(SCRIPTS, "dequeue.lua"))
        self.limiter = anyio.CapacityLimiter(THREADS)
        self._runs: dict[str, asyncio.Future[None]] = {}

    async def run(self, job_id: str) -> None:
        """Apply the job (or wait for the run already applying it); errors are the run's."""
        running = self._runs.get(job_id)
        if running is None:
            running = asyncio.ensure_future(
                anyio.to_thread.run_sync(self._apply, job_id, limiter=self.limiter)
            )
            self._runs[job_id] = running
            running.add_done_callback(self._forget(job_id))
        await asyncio.shield(running)

    def _forget(self, job_id: str) -> Callable[[asyncio.Future[None]], None]:
        def done(future: asyncio.Future[None]) -> None:
            self._runs.pop(job_id, None)
            if not future.cancelled():
                future.exception()  # retrieved: every waiter already got it

        return done

    def _apply(self, job_id: str) -> None:
        # A job a worker already finished has an empty click list: nothing happens then.
        try:
            self.pipeline.runner.run_job(job_id)
        except PoisonJob as error:  # its clicks are recorded as failed; a worker would park it
            log.error("inline job %s cannot be applied: %s", job_id, error)
        self.dequeue(
            keys=[Queue.redis_queue_namespace_prefix + QUEUE_NAME, Job.key_for(job_id)],
            args=[job_id],
        )

    def close(self) -> None:
        self.pipeline.close()
