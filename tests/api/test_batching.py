"""Coalescing: concurrent items share runs, each gets its own result, late items are never sent."""

from __future__ import annotations

import asyncio

import pytest

from crypto_mine.api.admission.batching import Batcher

pytestmark = pytest.mark.anyio


class Recorder:
    """A run that takes ``delay`` seconds and answers each item with its double."""

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.runs: list[list[int]] = []
        self.started = asyncio.Event()  # set by every run as it starts

    async def __call__(self, items: list[int]) -> list[int]:
        self.runs.append(items)
        self.started.set()
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("down")
        return [2 * item for item in items]


def batcher(run: Recorder, **options: int | float) -> Batcher[int, int]:
    settings = {"concurrency": 1, "max_weight": 1000, "timeout": 5.0, **options}
    return Batcher(run, what="a test", **settings)  # type: ignore[arg-type]


async def test_concurrent_items_share_runs_and_get_their_own_results() -> None:
    run = Recorder()
    coalescing = batcher(run)
    results = await asyncio.gather(*(coalescing.submit(n) for n in range(100)))
    assert results == [2 * n for n in range(100)]
    assert run.runs == [list(range(100))]  # all arrived before the first run: one run
    # While a run is in flight, what arrives waits for the next one, together.
    run.started.clear()
    first = asyncio.ensure_future(coalescing.submit(-1))
    await run.started.wait()
    assert await asyncio.gather(first, *(coalescing.submit(n) for n in range(50))) == [
        -2,
        *(2 * n for n in range(50)),
    ]
    assert run.runs[1:] == [[-1], list(range(50))]


async def test_runs_carry_at_most_their_weight_and_respect_concurrency() -> None:
    run = Recorder()
    coalescing = batcher(run, concurrency=2, max_weight=10)
    await asyncio.gather(*(coalescing.submit(n) for n in range(45)))
    assert max(len(items) for items in run.runs) <= 10
    assert sum(len(items) for items in run.runs) == 45


async def test_an_item_waiting_too_long_fails_and_is_never_sent() -> None:
    run = Recorder(delay=0.3)
    coalescing = batcher(run, timeout=0.1)
    first = asyncio.ensure_future(coalescing.submit(1))
    await run.started.wait()  # the first run starts with item 1 alone
    with pytest.raises(TimeoutError, match="waited too long for a test"):
        await coalescing.submit(2)  # waits behind the 0.3 s run: gone before it ends
    with pytest.raises(TimeoutError):
        await first  # in flight for longer than its bound too
    await coalescing.close()
    assert run.runs == [[1]]


async def test_a_failed_run_fails_its_items_only() -> None:
    run = Recorder(fail=True)
    coalescing = batcher(run)
    results = await asyncio.gather(
        *(coalescing.submit(n) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, ConnectionError) for result in results)
    run.fail = False
    assert await coalescing.submit(7) == 14
