"""The MongoDB counter every id comes from: one atomic ``$inc`` reserves a range of ids.

The counter is one document ``{_id: <name>, last_id: <last id reserved>}`` in the ``counters``
collection. ``find_one_and_update({_id}, {$inc: {last_id: n}}, upsert, AFTER)`` returns the new
``last_id``; the range ``[last_id - n + 1, last_id]`` then belongs to the caller alone, because
MongoDB applies single-document updates atomically. Before its first reservation a process
creates the document with ``last_id = ID_START - 1`` if it is missing (an insert that loses a
race with another replica's insert is ignored), so ``ID_START`` only matters the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from . import metrics
from .settings import RetryPolicy

log = logging.getLogger(__name__)

FIELD = "last_id"


class CounterUnavailable(Exception):
    """MongoDB did not reserve the range: unreachable after every retry, or it refused."""


@dataclass(frozen=True)
class IdRange:
    """The ids ``first`` to ``last``, both included."""

    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1

    def ids(self) -> range:
        return range(self.first, self.last + 1)


def error_kind(exc: PyMongoError) -> str:
    if isinstance(exc, DuplicateKeyError):
        return "duplicate_key"
    if getattr(exc, "timeout", False):
        return "timeout"
    if isinstance(exc, ConnectionFailure):
        return "connection"
    if isinstance(exc, OperationFailure):
        return "operation"
    return "other"


def _transient(exc: PyMongoError) -> bool:
    # A concurrent upsert of the same _id may fail with E11000 on MongoDB; running it again
    # finds the document.
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | DuplicateKeyError):
        return True
    return exc.has_error_label("RetryableWriteError") or exc.has_error_label(
        "TransientTransactionError"
    )


class Counter:
    """Reserves ranges of ids from one counter document, retrying transient MongoDB errors.

    A retried ``$inc`` whose first try did commit (its reply was lost) leaves that first range
    unused: a gap, never a duplicate.
    """

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        name: str,
        start: int,
        retry: RetryPolicy,
    ) -> None:
        self.collection = collection
        self.name = name
        self.start = start
        self.retry = retry
        self._created = False
        # Successful reservations and MongoDB attempts, for tests and the benchmark.
        self.reservations = 0
        self.attempts = 0

    async def reserve(self, count: int, trigger: str) -> IdRange:
        """Reserve ``count`` consecutive ids; raise :class:`CounterUnavailable` on failure."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        began = time.perf_counter()
        tries = self.retry.retries + 1
        for attempt in range(tries):
            self.attempts += 1
            try:
                with pymongo.timeout(self.retry.attempt_timeout):
                    last = await self._inc(count)
            except PyMongoError as exc:
                kind = error_kind(exc)
                metrics.errors.labels(kind).inc()
                if not _transient(exc):
                    log.error("counter %s: MongoDB refused the reservation: %s", self.name, exc)
                    metrics.errors.labels("gave_up").inc()
                    raise CounterUnavailable(f"MongoDB refused the reservation ({kind})") from exc
                if attempt + 1 == tries:
                    log.warning(
                        "counter %s: giving up after %s tries: %s %s", self.name, tries, kind, exc
                    )
                    metrics.errors.labels("gave_up").inc()
                    raise CounterUnavailable(
                        f"MongoDB unreachable after {tries} tries ({kind})"
                    ) from exc
                delay = self.retry.base_seconds * 2**attempt * (0.5 + random.random())
                log.info(
                    "counter %s: try %s failed (%s), retrying in %.0f ms",
                    self.name,
                    attempt + 1,
                    kind,
                    delay * 1000,
                )
                await asyncio.sleep(delay)
            else:
                self.reservations += 1
                metrics.segment_fetches.labels(trigger).inc()
                metrics.fetch_duration.observe(time.perf_counter() - began)
                return IdRange(last - count + 1, last)
        raise AssertionError("unreachable")

    async def peek(self) -> int | None:
        """The last id reserved so far, or None when the counter does not exist yet."""
        with pymongo.timeout(self.retry.attempt_timeout):
            doc = await self.collection.find_one({"_id": self.name})
        return None if doc is None else int(doc[FIELD])

    async def _inc(self, count: int) -> int:
        if not self._created:
            with contextlib.suppress(DuplicateKeyError):
                await self.collection.insert_one({"_id": self.name, FIELD: self.start - 1})
            self._created = True
        doc = await self.collection.find_one_and_update(
            {"_id": self.name},
            {"$inc": {FIELD: count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        value = None if doc is None else doc.get(FIELD)
        if not isinstance(value, int) or isinstance(value, bool):
            metrics.errors.labels("bad_document").inc()
            raise CounterUnavailable(f"counter {self.name} holds no integer {FIELD}: {value!r}")
        return value
