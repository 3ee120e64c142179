"""Helpers of the in-process allocator tests: a ``Counter`` on a real MongoDB server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener

from crypto_mine.allocator.counter import Counter, IdRange
from crypto_mine.allocator.settings import STRICT_LOG_SIZE, RetryPolicy
from tests.allocator.processes import COUNTERS_DB

T = TypeVar("T")


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
    log_size: int = STRICT_LOG_SIZE,
    listeners: Sequence[CommandListener] = (),
) -> AsyncIterator[Counter]:
    """A counter with a client of its own, like one replica's."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=2000, event_listeners=list(listeners)
    )
    try:
        yield Counter(
            client[COUNTERS_DB]["counters"], name, start, retry or RetryPolicy(), log_size
        )
    finally:
        await client.close()


def flat(ranges: list[IdRange]) -> list[int]:
    return [i for r in ranges for i in r.ids()]
