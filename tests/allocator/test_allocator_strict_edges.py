"""The strict allocator at its edges: a failed claim reaches every waiter, a request that went
away is counted and logged with its ids, close() lets a claim in flight finish, and the wait is
timed from the request's start. On a real MongoDB wire-protocol server, frozen by SIGSTOP."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import pytest
from prometheus_client import REGISTRY

from crypto_mine.allocator.counter import CounterUnavailable, IdRange
from crypto_mine.allocator.settings import RetryPolicy
from crypto_mine.allocator.strict import StrictAllocator
from devstack.servers import MongoServer
from tests.allocator.inprocess import collect_cancelled_sockets, counter, run

SHORT = RetryPolicy(retries=2, base_seconds=0.05, attempt_timeout=0.3, deadline=1.5)


def abandoned() -> float:
    return REGISTRY.get_sample_value("id_allocator_errors_total", {"kind": "abandoned"}) or 0


def test_a_failed_claim_fails_every_request_waiting_on_it(own_mongo: MongoServer) -> None:
    async def main() -> tuple[list[object], float]:
        async with counter(own_mongo.uri, "fails", retry=SHORT) as c:
            allocator = StrictAllocator(c)
            await allocator.allocate(1)  # the counter exists; now MongoDB goes away
            own_mongo.stop()
            began = time.monotonic()
            results = await asyncio.gather(
                *(allocator.allocate(2) for _ in range(5)), return_exceptions=True
            )
            elapsed = time.monotonic() - began
            await allocator.close()
            return list(results), elapsed

    results, elapsed = run(main)
    collect_cancelled_sockets()
    assert all(isinstance(result, CounterUnavailable) for result in results), results
    assert elapsed < SHORT.deadline + 2


def test_a_request_that_went_away_is_counted_with_its_ids(
    own_mongo: MongoServer, counter_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = abandoned()
    patient = RetryPolicy(retries=3, base_seconds=0.05, attempt_timeout=5.0, deadline=8.0)

    async def main() -> tuple[list[IdRange], list[IdRange]]:
        async with counter(own_mongo.uri, counter_name, retry=patient) as c:
            allocator = StrictAllocator(c)
            first = await allocator.allocate(2)  # ids 1-2
            own_mongo.signal(signal.SIGSTOP)  # the next claim hangs on MongoDB
            try:
                gone = asyncio.create_task(allocator.allocate(3))
                await asyncio.sleep(0.3)  # its claim is in flight
                gone.cancel()
            finally:
                own_mongo.signal(signal.SIGCONT)
            with pytest.raises(asyncio.CancelledError):
                await gone
            await allocator.close()  # lets the claim finish
            after = await StrictAllocator(c).allocate(1)
            return first, after

    caplog.set_level(logging.WARNING, logger="crypto_mine.allocator.strict")
    first, after = run(main)
    assert abandoned() == before + 1
    messages = [r.getMessage() for r in caplog.records]
    assert "ids 3-5 were reserved for a request that went away" in messages, messages
    assert [(r.first, r.last) for r in first] == [(1, 2)]
    assert [(r.first, r.last) for r in after] == [(6, 6)]


def test_close_lets_the_claim_in_flight_finish(own_mongo: MongoServer, counter_name: str) -> None:
    async def main() -> tuple[bool, int]:
        async with counter(own_mongo.uri, counter_name) as c:
            allocator = StrictAllocator(c)
            await allocator.allocate(1)
            own_mongo.signal(signal.SIGSTOP)
            try:
                waiting = asyncio.create_task(allocator.allocate(4))
                await asyncio.sleep(0.3)
            finally:
                # MongoDB answers again a moment after close() began.
                asyncio.get_running_loop().call_later(0.5, own_mongo.signal, signal.SIGCONT)
            await allocator.close()
            done = waiting.done()
            ids = await waiting
            return done, len([i for r in ids for i in r.ids()])

    done, count = run(main)
    assert done  # close() returned once the claim had served its request
    assert count == 4


def test_a_wait_is_timed_from_the_request(mongo: MongoServer, counter_name: str) -> None:
    def histogram() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("id_allocator_allocate_wait_seconds_count") or 0
        total = REGISTRY.get_sample_value("id_allocator_allocate_wait_seconds_sum") or 0
        return count, total

    async def main() -> tuple[float, float]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = StrictAllocator(c)
            count, total = histogram()
            await allocator.allocate(1)
            await allocator.close()
            after = histogram()
            return after[0] - count, after[1] - total

    observed, seconds = run(main)
    assert observed == 1
    assert 0 < seconds < 30
