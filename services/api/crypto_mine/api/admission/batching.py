"""Coalescing concurrent calls: many items, one round trip.

While ``concurrency`` runs are in flight, the items that arrive wait in a list, and the next
run carries all of them (up to ``max_weight``, oldest first). Under load a run therefore
carries many items; with one caller at a time, each run carries one. An item still waiting
after ``timeout`` seconds fails with :class:`TimeoutError` and is never sent, so an item whose
caller gave up is never acted on unseen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _one(_: object) -> int:
    return 1


class Batcher(Generic[T, R]):
    """``submit(item)`` answers with ``run``'s result for the item, ``run`` taking many at once."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R]]],
        *,
        concurrency: int,
        max_weight: int,
        timeout: float,
        what: str,
        weight: Callable[[T], int] = _one,
    ) -> None:
        self.run = run
        self.concurrency = concurrency
        self.max_weight = max_weight
        self.timeout = timeout
        self.weight = weight
        self._late = f"waited too long for {what}"
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Items submitted and not yet sent."""
        return len(self._pending)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._running < self.concurrency:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A timer rather than asyncio.wait_for, which costs every item a second future and its
        # callbacks: an item still waiting when it fires fails, and is never sent.
        timer = loop.call_later(self.timeout, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expire(self, future: asyncio.Future[R]) -> None:
        if not future.done():
            future.set_exception(TimeoutError(self._late))

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                if not batch:
                    continue
                try:
                    results = await self.run([item for item, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running -= 1

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """Up to ``max_weight`` of the pending items, oldest first; those whose caller already
        gave up (timed out, client gone) are dropped here, never sent."""
        budget = self.max_weight
        batch = []
        seen = 0
        for seen, (item, future) in enumerate(self._pending, start=1):  # noqa: B007
            if future.done():
                continue
            batch.append((item, future))
            budget -= self.weight(item)
            if budget <= 0:
                break
        del self._pending[:seen]
        return batch
