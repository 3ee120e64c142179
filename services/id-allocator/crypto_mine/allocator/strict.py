"""Strict mode: every request reserves exactly its ids with one ``$inc`` of ``count``.

Ids are handed out in the order MongoDB applied the increments, across all replicas: a request
that starts after another one got its answer gets larger ids. No id is reserved ahead, so the
sequence has no gaps, except for the range of a reservation that committed while its reply was
lost (the process died mid-request, or a timeout was retried): that range is never handed out.
"""

from __future__ import annotations

import time

from . import metrics
from .counter import Counter, IdRange
from .settings import STRICT


class StrictAllocator:
    """One MongoDB round trip per request; nothing is buffered."""

    mode = STRICT

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    @property
    def available(self) -> int:
        return 0

    async def start(self, wait: float) -> None:
        """Nothing to warm: strict mode reserves nothing ahead."""

    async def close(self) -> None:
        """Nothing to give back."""

    async def allocate(self, count: int) -> list[IdRange]:
        began = time.perf_counter()
        segment = await self.counter.reserve(count, "strict")
        metrics.allocate_wait.observe(time.perf_counter() - began)
        return [segment]
