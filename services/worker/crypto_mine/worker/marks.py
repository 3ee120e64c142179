"""Removing the balance marks that killed worker processes left behind.

A worker process writes its finished batches' markers and unmarks their users in one flush every
few seconds (:mod:`crypto_mine.pipeline.ledger`). Killed before that flush, it leaves the marks of
batches whose jobs had completed: harmless (a mark only stops its own batch from applying
again), but they would grow the balance documents with every crash. After each of RQ's
maintenance sweeps, the worker that ran it reads the next ``SWEEP_USERS`` balances (a cursor in
Redis walks the whole collection, then starts again) and removes the marks older than
``MARK_AGE`` whose batch has a marker or whose RQ job is finished or gone. A job that is queued,
started, deferred or parked as a dead letter can still run, and keeps its marks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from rq.job import Job, JobStatus

from crypto_mine.common.names import ShardKeys, shard_of
from crypto_mine.pipeline.ledger import Ledger

from . import metrics

log = logging.getLogger(__name__)

SWEEP_USERS = 500
# Far longer than any run of a job lasts (its timeout), and than any flush takes to come.
MARK_AGE = timedelta(minutes=10)


def runnable(connection: redis.Redis, batches: list[str]) -> set[str]:
    """The batches whose RQ job exists and has not finished (one pipelined round trip)."""
    if not batches:
        return set()
    pipe = connection.pipeline(transaction=False)
    for batch in batches:
        pipe.hget(Job.key_for(batch), "status")
    statuses = pipe.execute()
    finished = {JobStatus.FINISHED.value, JobStatus.FINISHED.value.encode()}
    return {
        batch
        for batch, status in zip(batches, statuses, strict=True)
        if status is not None and status not in finished
    }


def sweep_marks(connection: redis.Redis, ledger: Ledger, shard: int = 0, shards: int = 1) -> int:
    """One step of the sweep over the users of the worker's shard (whose batches its queue
    holds); returns how many marks it removed."""
    keys = ShardKeys(shard)
    after = connection.get(keys.mark_sweep)
    start = after.decode() if isinstance(after, bytes) else str(after or "")
    swept = ledger.sweep(
        start,
        SWEEP_USERS,
        datetime.now(UTC) - MARK_AGE,
        lambda batches: runnable(connection, batches),
        lambda user: shard_of(user, shards) == shard,
    )
    connection.set(keys.mark_sweep, swept.after)
    if swept.removed:
        metrics.MARKS_SWEPT.inc(swept.removed)
        log.info("removed %d marks left by stopped workers", swept.removed)
    return swept.removed
