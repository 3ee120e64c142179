"""The MongoDB counter every id comes from: one atomic single-document write reserves a range.

The counter is one document ``{_id: <name>, last_id: <last id reserved>}`` in the ``counters``
collection. Before its first reservation a process creates it with ``last_id = ID_START - 1`` if it
is missing (an insert that loses a race with another replica's insert is ignored), so
``ID_START`` only matters the first time. Nothing ever lowers ``last_id``.

Two ways to reserve, both single-document atomic writes, so no two reservations by any replica,
before or after any restart, ever overlap:

``reserve`` (segment mode): ``find_one_and_update({_id}, {$inc: {last_id: n}}, upsert, AFTER)``;
the range ``[last_id - n + 1, last_id]`` belongs to the caller. A try that timed out after the
server applied it is retried and reserves a second range: the first one is a gap. Segment mode
allows gaps, so it keeps this, the fastest write.

``claim`` (strict mode) reserves exactly once, even when the answer to a write is lost. Each
``Counter`` (one per process) has a random key K and numbers its claims; it makes one claim at a
time. A claim of n ids reads ``last_id`` = L (or reuses what its own previous claim left) and
writes, only if ``last_id`` is still L (compare and set)::

    update_one({_id, last_id: L},
               {$set: {last_id: L + n, "latest.K": "<claim number>:<L + 1>:<unix time>"}})

so the document also holds, per process, its latest applied claim. Only this process writes
``latest.K``. When the answer to a write is lost (timeout, broken connection) the write may have
been applied, may be applied later, or never, and the counter is read again at once:

- ``latest.K`` names this claim: one of its writes was applied; its range is recorded there;
- otherwise none was applied so far (a later claim of this process cannot have overwritten it:
  claims are one at a time; an earlier claim's late write cannot apply once this one's did, as
  ``last_id`` has moved past the value it expects). If ``last_id`` is still L, the write may
  still be applied: the next try writes again against the same L, and of the two at most one
  can match. If ``last_id`` moved past L, the write never will be: ``last_id`` never returns.

So a claim that returns was applied exactly once. One that gives up (MongoDB unreachable until
its deadline) may still be applied later: that range is logged and counted as
``id_allocator_errors_total{kind="unresolved"}``. The entries of processes silent for
``PRUNE_AGE`` are removed by the first claim of every new process, in a compare-and-set based on
the read that found them (so only if nothing was written since), and the document stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# Strict mode: process key -> "<claim number>:<first id>:<unix time>" of its latest claim.
LATEST = "latest"
# A process whose latest claim is older than this is gone: no claim lasts longer than its
# deadline (at most two minutes), so removing its key cannot hide a write still in doubt.
PRUNE_AGE = 3600

# Pause before re-reading after the n-th lost compare-and-set in a row (n >= 2): uniformly
# random up to min(base x 2^n, max). The first conflict re-reads at once.
CONFLICT_PAUSE_BASE = 0.001
CONFLICT_PAUSE_MAX = 0.05


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


@dataclass
class Claim:
    """One strict reservation in progress: its number in the process, its size, its doubts."""

    number: int
    count: int
    # Values of last_id that writes of this claim were sent against with their answer lost:
    # one of them may have been applied, or be applied later.
    unsure: set[int] = field(default_factory=set)

    def entry(self, first: int) -> str:
        return f"{self.number}:{first}:{int(time.time())}"

    def settle(self, last: int, latest: Any) -> IdRange | None:
        """This claim's range if ``latest`` (this process's entry) shows it applied.

        Otherwise forget the writes that can no longer be applied (``last_id`` moved past them).
        ``last`` and ``latest`` come from one read of the counter document.
        """
        number, first, _ = _entry(latest)
        if number == self.number:
            return IdRange(first, first + self.count - 1)
        self.unsure = {sent for sent in self.unsure if sent >= last}
        return None


def _entry(value: Any) -> tuple[int, int, int]:
    """(claim number, first id, unix time) of a ``latest`` entry; (-1, -1, -1) if unreadable."""
    parts = str(value).split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return -1, -1, -1
    return int(parts[0]), int(parts[1]), int(parts[2])


class Counter:
    """Reserves ranges of ids from one counter document, retrying transient MongoDB errors.

    ``reserve`` is segment mode's ``$inc``: a retried try whose first attempt was applied (its
    reply was lost) leaves that first range unused. ``claim`` is strict mode's confirmed
    compare-and-set, one at a time per instance: see the module documentation.
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
        self.key = secrets.token_urlsafe(9)
        self._created = False
        self._claiming = asyncio.Lock()
        self._claims = 0
        # last_id as this process's latest successful claim left it.
        self._seen: int | None = None
        # Entries of gone processes found by the latest read, to remove with the next write;
        # None until the first read.
        self._stale: dict[str, Any] | None = None
        # Successful reservations and MongoDB attempts, for tests and the benchmark.
        self.reservations = 0
        self.attempts = 0
        # Strict claims: lost compare-and-sets, claims found applied after their answer was
        # lost, ranges that may have been reserved by a claim that gave up.
        self.conflicts = 0
        self.confirmed = 0
        self.unresolved = 0

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

    async def claim(self, count: int, deadline: float) -> IdRange:
        """The ``count`` ids right after the counter's value, reserved exactly once.

        Gives up with :class:`CounterUnavailable` after ``1 + retries`` failed tries or at
        ``deadline`` (``time.monotonic()``), whichever comes first; lost compare-and-sets are
        not failures and only the deadline bounds them.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        async with self._claiming:
            self._claims += 1
            claim = Claim(self._claims, count)
            try:
                return await self._claim(claim, deadline)
            except CounterUnavailable:
                metrics.errors.labels("gave_up").inc()
                for sent in sorted(claim.unsure):
                    # Sent, never confirmed, maybe applied later: a possible gap.
                    self.unresolved += 1
                    metrics.errors.labels("unresolved").inc()
                    log.warning(
                        "counter %s: ids %s-%s may have been reserved by a write whose answer"
                        " was lost; they will never be handed out",
                        self.name,
                        sent + 1,
                        sent + count,
                    )
                raise

    async def _claim(self, claim: Claim, deadline: float) -> IdRange:
        began = time.perf_counter()
        failures = conflicts = 0
        expected, self._seen = self._seen, None
        while True:
            sent: int | None = None
            try:
                if expected is None:
                    found = await self._read(claim, deadline)
                    if isinstance(found, IdRange):
                        return self._claimed(found, began, confirmed=True)
                    expected = found
                sent = expected
                self.attempts += 1
                if await self._compare_and_set(claim, expected, deadline):
                    ids = IdRange(expected + 1, expected + claim.count)
                    return self._claimed(ids, began, confirmed=False)
            except PyMongoError as exc:
                expected = None
                failures += 1
                late = await self._failed(claim, exc, sent, failures, deadline)
                if late is not None:
                    return self._claimed(late, began, confirmed=True)
            else:
                # Another replica's reservation came first: read the new value and try again.
                expected = None
                conflicts += 1
                self.conflicts += 1
                metrics.conflicts.inc()
                if conflicts > 1:
                    ceiling = min(CONFLICT_PAUSE_MAX, CONFLICT_PAUSE_BASE * 2**conflicts)
                    await self._pause(random.uniform(0, ceiling), deadline)

    async def _failed(
        self,
        claim: Claim,
        exc: PyMongoError,
        sent: int | None,
        failures: int,
        deadline: float,
    ) -> IdRange | None:
        """After a failed try: the claim's range if its lost write was applied, else wait."""
        kind = error_kind(exc)
        metrics.errors.labels(kind).inc()
        if sent is not None:
            claim.unsure.add(sent)
        if not _transient(exc):
            log.error("counter %s: MongoDB refused the claim: %s", self.name, exc)
            raise CounterUnavailable(f"MongoDB refused the reservation ({kind})") from exc
        if sent is not None:
            # Read back at once, before anything else of this claim.
            found = await self._check(claim, deadline)
            if found is not None:
                return found
        tries = self.retry.retries + 1
        if failures == tries:
            log.warning("counter %s: giving up after %s tries: %s %s", self.name, tries, kind, exc)
            raise CounterUnavailable(f"MongoDB unreachable after {tries} tries ({kind})") from exc
        delay = self.retry.base_seconds * 2 ** (failures - 1) * (0.5 + random.random())
        log.info(
            "counter %s: try %s failed (%s), retrying in %.0f ms",
            self.name,
            failures,
            kind,
            delay * 1000,
        )
        await self._pause(delay, deadline)
        return None

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

    async def _read(self, claim: Claim, deadline: float) -> IdRange | int:
        """``last_id``, or the claim's range when the document shows it applied."""
        full = bool(claim.unsure) or self._stale is None or bool(self._stale)
        projection = None if full else {FIELD: 1}
        with self._attempt(deadline):
            doc = await self.collection.find_one({"_id": self.name}, projection)
        if doc is None:
            with self._attempt(deadline), contextlib.suppress(DuplicateKeyError):
                await self.collection.insert_one({"_id": self.name, FIELD: self.start - 1})
            # If another replica created it first, the compare-and-set will say so.
            self._stale = {}
            return self.start - 1
        last = doc.get(FIELD)
        if not isinstance(last, int) or isinstance(last, bool):
            metrics.errors.labels("bad_document").inc()
            raise CounterUnavailable(f"counter {self.name} holds no integer {FIELD}: {last!r}")
        if full:
            latest = doc.get(LATEST)
            latest = latest if isinstance(latest, Mapping) else {}
            if self._stale is None or self._stale:
                old = time.time() - PRUNE_AGE
                self._stale = {
                    k: v for k, v in latest.items() if k != self.key and _entry(v)[2] < old
                }
            if claim.unsure:
                found = claim.settle(last, latest.get(self.key))
                if found is not None:
                    return found
        return last

    async def _check(self, claim: Claim, deadline: float) -> IdRange | None:
        """Read back after a write whose answer was lost: its range if it was applied."""
        try:
            found = await self._read(claim, deadline)
        except PyMongoError as exc:
            metrics.errors.labels(error_kind(exc)).inc()
            return None
        return found if isinstance(found, IdRange) else None

    async def _compare_and_set(self, claim: Claim, expected: int, deadline: float) -> bool:
        update: dict[str, Any] = {
            "$set": {
                FIELD: expected + claim.count,
                f"{LATEST}.{self.key}": claim.entry(expected + 1),
            }
        }
        stale = self._stale or {}
        if stale:
            # Found by the read that gave `expected`: if the compare-and-set matches, nothing
            # was written since, so a process that came back keeps its entry.
            update["$unset"] = {f"{LATEST}.{key}": "" for key in stale}
        with self._attempt(deadline):
            result = await self.collection.update_one({"_id": self.name, FIELD: expected}, update)
        if result.matched_count != 1:
            return False
        if stale:
            log.info("counter %s: removed the entries of %s gone processes", self.name, len(stale))
            self._stale = {}
        return True

    def _attempt(self, deadline: float) -> contextlib.AbstractContextManager[Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CounterUnavailable("MongoDB did not confirm the reservation in time")
        return pymongo.timeout(min(self.retry.attempt_timeout, left))

    async def _pause(self, delay: float, deadline: float) -> None:
        if time.monotonic() + delay >= deadline:
            raise CounterUnavailable("MongoDB did not confirm the reservation in time")
        await asyncio.sleep(delay)

    def _claimed(self, ids: IdRange, began: float, confirmed: bool) -> IdRange:
        if confirmed:
            self.confirmed += 1
            log.info(
                "counter %s: a lost answer was applied: ids %s-%s confirmed from the counter",
                self.name,
                ids.first,
                ids.last,
            )
        else:
            self._seen = ids.last
        self.reservations += 1
        metrics.segment_fetches.labels("strict").inc()
        metrics.fetch_duration.observe(time.perf_counter() - began)
        return ids
