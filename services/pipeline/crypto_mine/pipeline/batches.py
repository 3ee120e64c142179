"""One batch of clicks, from its job payload to its recorded outcome, exactly once in effect.

The worker runs every RQ job through a :class:`BatchRunner` (``crypto_mine.worker.jobs``); the
api runs the same code inline when ``USE_QUEUE=false``. Steps: parse the payload -> apply the
valid clicks with the :class:`~crypto_mine.pipeline.ledger.Ledger` -> record every outcome with
the :class:`~crypto_mine.pipeline.outcomes.OutcomeRecorder` (one script call). MongoDB and Redis
are retried with backoff while the retry budget lasts; after that :class:`TransientFailure`
leaves the job to be retried later. A batch that can never be applied raises :class:`PoisonJob`
once its clicks are recorded as failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from crypto_mine.common.metrics import REDIS_LATENCY
from crypto_mine.common.retry import Backoff, retrying

from .failures import PoisonJob, TransientFailure, error_code, is_transient
from .ledger import Applied, Ledger, QueuedClick
from .outcomes import Failure, OutcomeRecorder

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CLICKS = 1000


def parse(payload: Any) -> tuple[list[QueuedClick], list[Failure]]:
    """The valid clicks of a payload, and the invalid ones that can still be told apart."""
    if not isinstance(payload, list):
        raise PoisonJob(
            "invalid_payload", f"expected a list of clicks, got {type(payload).__name__}"
        )
    clicks: list[QueuedClick] = []
    failures: list[Failure] = []
    for item in payload:
        if not isinstance(item, dict):
            raise PoisonJob("invalid_payload", f"expected click objects, got {item!r:.80}")
        user, key, count, at = item.get("user"), item.get("key"), item.get("clicks"), item.get("at")
        if not isinstance(user, str) or not isinstance(key, str) or not user or not key:
            raise PoisonJob("invalid_payload", f"click without user or key: {item!r:.80}")
        click = QueuedClick(
            user, key, count if isinstance(count, int) else 0, at if isinstance(at, int) else 0
        )
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CLICKS:
            failures.append(Failure(click, "invalid_click"))
        else:
            clicks.append(click)
    return clicks, failures


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one run of a batch did."""

    clicks: int  # valid clicks of the payload
    applied: Applied | None
    failures: list[Failure]

    @property
    def fresh(self) -> int:
        return self.applied.fresh if self.applied else 0

    @property
    def duplicates(self) -> int:
        return sum(o.duplicate for o in self.applied.outcomes) if self.applied else 0

    @property
    def users(self) -> int:
        return len(self.applied.users) if self.applied else 0


class BatchRunner:
    """Applies batches with a ledger and records their outcomes, retrying transient failures.

    ``passthrough`` exceptions (the worker's job timeout) are neither retried nor poison: they
    propagate as they are.
    """

    def __init__(
        self,
        ledger: Ledger,
        recorder: OutcomeRecorder,
        backoff: Backoff,
        retry_budget_seconds: float,
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.ledger = ledger
        self.recorder = recorder
        self.backoff = backoff
        self.retry_budget_seconds = retry_budget_seconds
        self.passthrough = passthrough
        self._indexed = False

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        try:
            return retrying(call, is_transient, self.backoff, self.retry_budget_seconds, what)
        except self.passthrough:
            raise
        except Exception as error:
            if is_transient(error):
                raise TransientFailure(error_code(error), error) from error
            raise

    def run_job(self, job_id: str, payload: Any = None) -> BatchResult:
        """Apply a job: its clicks come from its click list, claimed first so that no click
        joins the job once a run began (``payload`` only for jobs that carry their clicks)."""
        if payload is None:
            payload = self._retrying(lambda: self.recorder.claim(job_id), "redis")
        return self.run(job_id, payload)

    def run(self, batch: str, payload: Any) -> BatchResult:
        try:
            clicks, failures = parse(payload)
        except PoisonJob as poison:
            poison.clicks = self._retrying(lambda: self.recorder.record(batch, None, []), "redis")
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
        except Exception as error:
            if isinstance(error, (*self.passthrough, TransientFailure)):
                raise
            code = error_code(error)
            log.exception("batch %s cannot be applied (%s)", batch, code)
            everything = failures + [Failure(click, code) for click in clicks]
            lost = self._retrying(lambda: self.recorder.record(batch, None, everything), "redis")
            raise PoisonJob(code, str(error), lost) from error
        started = time.perf_counter()
        self._retrying(lambda: self.recorder.record(batch, applied, failures), "redis")
        REDIS_LATENCY.labels("complete").observe(1000 * (time.perf_counter() - started))
        return BatchResult(len(clicks), applied, failures)
