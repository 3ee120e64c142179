"""Strict mode: one gap-free sequence of ids, ordered across replicas, nothing reserved ahead.

Requests waiting in one process are served together: while a claim is in flight, new requests
queue up, and the next claim reserves exactly the sum of their counts (see
:meth:`.counter.Counter.claim`), which is then split among them in arrival order. A process thus
has at most one write in flight, competes with other replicas only, and serves many requests per
MongoDB round trip. Every request is answered within ``ID_REQUEST_DEADLINE_MS`` of its arrival; a
claim's deadline is that of its oldest request.

Guarantees, for the requests that get their ids:

- the ids of all replicas form one sequence in MongoDB's commit order: a request that starts
  after another one got its answer gets larger ids;
- no gap: a claim returns only after its write is known to have been applied, exactly once, even
  when MongoDB's answer to a try was lost and the write applied late.

Ids are reserved and never handed out (gaps, never duplicates) only when:

- the process dies, or a request is cancelled, between its claim being applied and its answer
  (a ``kill -9`` mid-request; ``errors_total{kind="abandoned"}`` counts cancelled requests);
- a claim gives up (503 at the deadline, or after its tries) after a write whose answer was
  lost: that write may have been applied, or be applied later. Logged with its range and
  counted as ``errors_total{kind="unresolved"}``;
- an answer reaches no client (its connection broke, or its caller gave up before the
  allocator's deadline), like any lost response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

from . import metrics
from .counter import Counter, IdRange
from .settings import STRICT

log = logging.getLogger(__name__)


@dataclass
class Waiter:
    """A request waiting for its ids."""

    count: int
    deadline: float
    future: asyncio.Future[IdRange]


class StrictAllocator:
    """Serves every request from a confirmed claim made after it arrived; nothing is buffered."""

    mode = STRICT

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._queue: deque[Waiter] = deque()
        self._writer: asyncio.Task[None] | None = None
        # Claims made and requests served since start, for tests and the benchmark.
        self.claims = 0
        self.served = 0

    @property
    def available(self) -> int:
        return 0

    async def start(self, wait: float) -> None:
        """Nothing to warm: strict mode reserves nothing ahead."""

    async def close(self) -> None:
        """Let a claim in flight finish, so that its ids are not lost for nothing."""
        task = self._writer
        if task is not None:
            await asyncio.wait({task}, timeout=self.counter.retry.deadline)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def allocate(self, count: int) -> list[IdRange]:
        """``count`` ids in one range; raise ``CounterUnavailable`` if MongoDB fails."""
        began = time.perf_counter()
        waiter = Waiter(
            count,
            time.monotonic() + self.counter.retry.deadline,
            asyncio.get_running_loop().create_future(),
        )
        self._queue.append(waiter)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="strict-claims")
        segment = await waiter.future
        metrics.allocate_wait.observe(time.perf_counter() - began)
        return [segment]

    async def _write(self) -> None:
        try:
            while self._queue:
                batch = [w for w in self._queue if not w.future.done()]
                self._queue.clear()
                if batch:
                    await self._serve(batch)
        finally:
            self._writer = None

    async def _serve(self, batch: list[Waiter]) -> None:
        deadline = min(w.deadline for w in batch)
        try:
            claimed = await self.counter.claim(sum(w.count for w in batch), deadline)
        except Exception as exc:  # every waiter gets the failure
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        self.claims += 1
        first = claimed.first
        for w in batch:
            ids = IdRange(first, first + w.count - 1)
            first += w.count
            if w.future.done():
                metrics.errors.labels("abandoned").inc()
                log.warning(
                    "ids %s-%s were reserved for a request that went away", ids.first, ids.last
                )
            else:
                self.served += 1
                w.future.set_result(ids)
