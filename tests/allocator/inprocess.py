"""Helpers of the in-process allocator tests: a ``Counter`` on a real MongoDB server."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener

from crypto_mine.allocator.counter import Counter, IdRange
from crypto_mine.allocator.settings import RetryPolicy
from tests.allocator.processes import COUNTERS_DB

T = TypeVar("T")

# The retries of tests that are not about retries: production's 1 s per attempt and 4 s per
# strict request fail such tests when the machine is busy. Tests of the bounds pass their own.
PATIENT = RetryPolicy(attempt_timeout=10.0, deadline=60.0)


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return asyncio.run(wrapped())


@asynccontextmanager
async def counter(
    uri: str,
    name: str,
    start: int = 1,
    retry: RetryPolicy | None = None,
    listeners: Sequence[CommandListener] = (),
) -> AsyncIterator[Counter]:
    """A counter with a client of its own, like one replica's."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=10_000, event_listeners=list(listeners)
    )
    try:
        yield Counter(client[COUNTERS_DB]["counters"], name, start, retry or PATIENT)
    finally:
        await client.close()


def flat(ranges: list[IdRange]) -> list[int]:
    return [i for r in ranges for i in r.ids()]


def collect_cancelled_sockets() -> None:
    """Collect the sockets pymongo leaves unclosed when ``close()`` cancels a connection attempt.

    Tests that stop or never start their MongoDB server call it last, so that the warning is not
    raised as an error of whichever test runs next.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
