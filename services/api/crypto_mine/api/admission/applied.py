"""MongoDB, the authority on clicks beyond the Redis window: one bounded read per call.

Admission asks about every click of a batch before its script runs (one read by ``_id`` for the
whole batch, and one more for the markers when a click was found), so that a key repeated after
its record left Redis is answered ``200`` with its original outcome; the click status endpoint
asks about a key Redis no longer holds. Queries and records:
``crypto_mine.pipeline.applied_records``.

A MongoDB that is slow or away must not hold clicks up (clicks queue while it is down): a read
is bounded by ``MINING_IDEMPOTENCY_LOOKUP_TIMEOUT``, and after a failure the next reads are
skipped for ``SKIP_SECONDS``. A skipped or failed read is *unchecked* (``None``): admission
then takes the clicks as new, and a click that MongoDB already holds is still counted once,
by its unique index (the worker reports it as a duplicate with the original reward).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pymongo
from prometheus_client import Counter, Histogram
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from crypto_mine.common.names import Collections
from crypto_mine.pipeline.applied_records import (
    CLICK_FIELDS,
    MARKER_FIELDS,
    markers_filter,
    records,
)
from crypto_mine.pipeline.ledger import Pair, clicks_filter, one_batch
from crypto_mine.pipeline.records import ClickRecord

log = logging.getLogger(__name__)

SKIP_SECONDS = 1.0

LOOKUPS = Counter(
    "mining_idempotency_lookups_total",
    "Keys looked up in MongoDB beyond the Redis window, by result: found (answered from "
    "MongoDB), new (not there), unchecked (MongoDB slow or away: taken as new).",
    ["result"],
)
LOOKUP_SECONDS = Histogram(
    "mining_idempotency_lookup_duration_seconds",
    "Duration of one MongoDB lookup of a batch's keys (failed and timed-out ones included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class AppliedClicks:
    def __init__(self, database: AsyncDatabase[dict[str, Any]], timeout_seconds: float) -> None:
        self.clicks = database[Collections.clicks]
        self.batches = database[Collections.batches]
        self.timeout = timeout_seconds
        self._skip_until = 0.0
        self._found = LOOKUPS.labels("found")
        self._new = LOOKUPS.labels("new")
        self._unchecked = LOOKUPS.labels("unchecked")

    async def find(self, pairs: Sequence[Pair]) -> dict[Pair, ClickRecord] | None:
        """The records of those of ``pairs`` MongoDB holds; ``None`` when it could not tell."""
        if not pairs:
            return {}
        if time.monotonic() < self._skip_until:
            self._unchecked.inc(len(pairs))
            return None
        started = time.perf_counter()
        try:
            found = await self._bounded(pairs)
        except (PyMongoError, TimeoutError) as error:
            self._skip_until = time.monotonic() + SKIP_SECONDS
            log.warning("applied clicks unchecked for %s s: %r", SKIP_SECONDS, error)
            self._unchecked.inc(len(pairs))
            return None
        finally:
            LOOKUP_SECONDS.observe(time.perf_counter() - started)
        self._found.inc(len(found))
        self._new.inc(len(pairs) - len(found))
        return found

    async def _bounded(self, pairs: Sequence[Pair]) -> dict[Pair, ClickRecord]:
        """``_read`` within the timeout, however the driver takes being cancelled.

        The read runs as a task of its own: when the time is up the caller goes on at once and
        the task is cancelled and left to end by itself. (A driver may turn a cancelled read
        into a network error and retry it on a new connection, no longer cancelled; the
        driver's own deadline, ``pymongo.timeout``, ends that retry too.)
        """
        read = asyncio.ensure_future(self._read(pairs))
        try:
            done, _ = await asyncio.wait((read,), timeout=self.timeout)
        finally:
            if not read.done():
                read.cancel()
                read.add_done_callback(_forget)
        if not done:
            raise TimeoutError(f"MongoDB did not answer within {self.timeout} s")
        return read.result()

    async def _read(self, pairs: Sequence[Pair]) -> dict[Pair, ClickRecord]:
        with pymongo.timeout(self.timeout):
            return await self._read_records(pairs)

    async def _read_records(self, pairs: Sequence[Pair]) -> dict[Pair, ClickRecord]:
        wanted = clicks_filter(pairs)
        size = one_batch(len(wanted["_id"]["$in"]))
        docs = await self.clicks.find(wanted, CLICK_FIELDS, batch_size=size).to_list()
        if not docs:
            return {}
        batches = markers_filter(docs)
        size = one_batch(len(batches["_id"]["$in"]))
        markers = await self.batches.find(batches, MARKER_FIELDS, batch_size=size).to_list()
        return records(docs, markers)


def _forget(read: asyncio.Future[Any]) -> None:
    """Take the result of a read nobody waits for any more, so that its error is not logged."""
    if not read.cancelled():
        read.exception()
