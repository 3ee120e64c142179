"""Segment mode: hand out ids from ranges reserved ahead, refilled in the background.

Every range in the buffer was reserved by one atomic ``$inc`` (see :mod:`.counter`), so it
belongs to this process alone. Taking ids from the buffer is synchronous code between two
``await`` points: two requests of one event loop can never take the same id.

The buffer is a double buffer: when fewer than ``threshold`` x size ids are left, one background
fetch reserves the next segment while requests keep being served from what is left, so in steady
state no request waits on MongoDB. A request asking for more than the buffer holds waits for the
fetch in flight, or starts one sized to what it lacks plus one segment. At most one fetch is in
flight; ranges are appended in the order MongoDB handed them out, so one replica's ids increase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from . import metrics
from .counter import Counter, IdRange
from .settings import SEGMENT, SegmentPolicy

log = logging.getLogger(__name__)

# A segment that lasted longer than this many target lifetimes halves the next one.
SHRINK_FACTOR = 10


class SegmentAllocator:
    """Serves ids from a buffer of reserved ranges, prefetching the next range in time."""

    mode = SEGMENT

    def __init__(
        self,
        counter: Counter,
        policy: SegmentPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self.policy = policy
        self.clock = clock
        self._segments: deque[IdRange] = deque()
        self._available = 0
        self._size = policy.initial
        self._fetch: asyncio.Task[None] | None = None
        self._last_prefetch: float | None = None
        # Requests that had to wait for MongoDB, and ranges fetched, since start.
        self.waits = 0
        self.fetches = 0
        metrics.segment_size.set(self._size)

    @property
    def available(self) -> int:
        """Ids reserved and not yet handed out."""
        return self._available

    @property
    def segment_size(self) -> int:
        return self._size

    async def start(self, wait: float) -> None:
        """Reserve the first segment, waiting at most ``wait`` seconds for it."""
        task = self._start_fetch(self._size, "prefetch")
        await asyncio.wait({task}, timeout=wait)

    async def idle(self) -> None:
        """Wait until no fetch is in flight (its failure is not raised here)."""
        while (task := self._fetch) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def close(self) -> None:
        task = self._fetch
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def allocate(self, count: int) -> list[IdRange]:
        """``count`` ids as ascending ranges; raise ``CounterUnavailable`` if MongoDB fails."""
        if count > self._available:
            began = time.perf_counter()
            self.waits += 1
            metrics.waits.inc()
            while count > self._available:
                task = self._fetch
                if task is None:
                    task = self._start_fetch(count - self._available + self._size, "demand")
                await asyncio.shield(task)
            metrics.allocate_wait.observe(time.perf_counter() - began)
        else:
            metrics.allocate_wait.observe(0.0)
        taken = self._take(count)
        self._maybe_prefetch()
        return taken

    def _take(self, count: int) -> list[IdRange]:
        taken: list[IdRange] = []
        left = count
        while left:
            head = self._segments[0]
            n = min(left, len(head))
            taken.append(IdRange(head.first, head.first + n - 1))
            if n == len(head):
                self._segments.popleft()
            else:
                self._segments[0] = IdRange(head.first + n, head.last)
            left -= n
        self._available -= count
        metrics.buffer_remaining.set(self._available)
        return taken

    def _maybe_prefetch(self) -> None:
        if self._fetch is not None or self._available >= self.policy.threshold * self._size:
            return
        self._adapt()
        self._start_fetch(self._size, "prefetch")

    def _adapt(self) -> None:
        now = self.clock()
        last, self._last_prefetch = self._last_prefetch, now
        if not self.policy.adaptive or last is None:
            return
        lasted = now - last
        target = self.policy.target_seconds
        if lasted < target and self._size < self.policy.maximum:
            self._size = min(self._size * 2, self.policy.maximum)
        elif lasted > target * SHRINK_FACTOR and self._size > self.policy.minimum:
            self._size = max(self._size // 2, self.policy.minimum)
        else:
            return
        log.info("segment size now %s (last segment lasted %.3f s)", self._size, lasted)
        metrics.segment_size.set(self._size)

    def _start_fetch(self, count: int, trigger: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run_fetch(count, trigger), name=f"fetch-{trigger}")
        task.add_done_callback(self._fetch_done)
        self._fetch = task
        return task

    async def _run_fetch(self, count: int, trigger: str) -> None:
        try:
            segment = await self.counter.reserve(count, trigger)
            self._segments.append(segment)
            self._available += len(segment)
            self.fetches += 1
            metrics.buffer_remaining.set(self._available)
        finally:
            self._fetch = None

    @staticmethod
    def _fetch_done(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.debug("segment fetch failed: %s", exc)
