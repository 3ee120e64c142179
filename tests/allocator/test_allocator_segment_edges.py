"""The segment allocator at its edges: exact thresholds, what each fetch is counted as, the
size's steps and their log line, and a fetch that fails or is cut off by ``close()``.

On a real MongoDB wire-protocol server; the clock of the size's adaptation is the test's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from prometheus_client import REGISTRY

from crypto_mine.allocator.counter import CounterUnavailable
from crypto_mine.allocator.segments import SHRINK_FACTOR, SegmentAllocator
from crypto_mine.allocator.settings import RetryPolicy, SegmentPolicy
from devstack.servers import MongoServer
from tests.allocator.inprocess import collect_cancelled_sockets, counter, run

FIXED_100 = SegmentPolicy(initial=100, minimum=100, maximum=100, adaptive=False)
QUICK = RetryPolicy(retries=1, base_seconds=0.01, attempt_timeout=0.3, deadline=1.0)


def fetches(trigger: str) -> float:
    return (
        REGISTRY.get_sample_value("id_allocator_segment_fetches_total", {"trigger": trigger}) or 0
    )


def waited() -> tuple[float, float]:
    """(count, sum) of the allocate-wait histogram."""
    count = REGISTRY.get_sample_value("id_allocator_allocate_wait_seconds_count") or 0
    total = REGISTRY.get_sample_value("id_allocator_allocate_wait_seconds_sum") or 0
    return count, total


def test_each_fetch_is_counted_by_what_triggered_it(mongo: MongoServer, counter_name: str) -> None:
    before = {trigger: fetches(trigger) for trigger in ("prefetch", "demand")}

    async def main() -> None:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=10)  # the first segment: a prefetch
            await allocator.allocate(250)  # more than the buffer: a demand fetch (a segment left)
            await allocator.allocate(60)  # below the threshold: a prefetch
            await allocator.idle()
            await allocator.close()

    run(main)
    assert fetches("prefetch") - before["prefetch"] == 2
    assert fetches("demand") - before["demand"] == 1


def test_taking_exactly_what_is_left_waits_for_nothing(
    mongo: MongoServer, counter_name: str
) -> None:
    async def main() -> tuple[int, int, int, float, float]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(
                c, SegmentPolicy(initial=100, minimum=100, maximum=100, adaptive=False, threshold=0)
            )
            await allocator.start(wait=10)
            count, total = waited()
            await allocator.allocate(100)  # all of it: no wait, and (threshold 0) no prefetch
            served = waited()
            left, fetched = allocator.available, allocator.fetches
            await allocator.allocate(1)  # now the buffer is empty: one wait
            await allocator.allocate(150)  # and another
            await allocator.close()
            return left, fetched, allocator.waits, served[0] - count, served[1] - total

    left, fetched, waits, observed, seconds = run(main)
    assert (left, fetched) == (0, 1)
    assert waits == 2
    assert (observed, seconds) == (1, 0.0)  # a request served from the buffer waited 0 s


def test_a_wait_is_timed_from_its_start(mongo: MongoServer, counter_name: str) -> None:
    async def main() -> float:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            count, total = waited()
            await allocator.allocate(10)  # nothing fetched yet: waits for a demand fetch
            await allocator.close()
            assert waited()[0] == count + 1
            return waited()[1] - total

    seconds = run(main)
    assert 0 < seconds < 30


def test_a_request_joins_the_fetch_in_flight(mongo: MongoServer, counter_name: str) -> None:
    async def main() -> int:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            allocator._start_fetch(100, "prefetch")  # a prefetch in flight, nothing available
            await asyncio.gather(*(allocator.allocate(5) for _ in range(10)))
            await allocator.close()
            return allocator.fetches

    assert run(main) == 1  # ten requests, one fetch between them


def test_a_fetch_bringing_exactly_what_a_request_lacks_is_enough(
    mongo: MongoServer, counter_name: str
) -> None:
    before = fetches("demand")

    async def main() -> int:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=10)  # 100 ids
            allocator._start_fetch(100, "prefetch")  # 100 more on their way
            taken = await allocator.allocate(200)  # exactly both: no demand fetch on top
            await allocator.close()
            return sum(len(r) for r in taken)

    assert run(main) == 200
    assert fetches("demand") == before


def test_no_prefetch_while_exactly_the_threshold_is_left(
    mongo: MongoServer, counter_name: str
) -> None:
    async def main() -> tuple[int, int]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(
                c, SegmentPolicy(initial=100, minimum=100, maximum=100, adaptive=False)
            )
            await allocator.start(wait=10)
            await allocator.allocate(50)  # 50 left = 0.5 x 100: not below the threshold
            at_threshold = allocator.fetches
            await allocator.allocate(1)  # below it now
            await allocator.idle()
            await allocator.close()
            return at_threshold, allocator.fetches

    assert run(main) == (1, 2)


def sizes(mongo: MongoServer, name: str, policy: SegmentPolicy, times: list[float]) -> list[int]:
    """The segment size after each prefetch, the clock at ``times`` for them in turn."""
    now = [0.0]

    async def main() -> list[int]:
        async with counter(mongo.uri, name) as c:
            allocator = SegmentAllocator(c, policy, clock=lambda: now[0])
            await allocator.start(wait=10)
            found = []
            for moment in times:
                now[0] = moment
                keep = int(policy.threshold * allocator.segment_size)
                await allocator.allocate(allocator.available - keep + 1)  # just below: prefetch
                await allocator.idle()
                found.append(allocator.segment_size)
            await allocator.close()
            return found

    return run(main)


def test_the_size_steps_only_past_its_bounds(
    mongo: MongoServer, counter_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = 1.0
    policy = SegmentPolicy(initial=301, minimum=50, maximum=602, target_seconds=target)
    slow = target * SHRINK_FACTOR
    caplog.set_level(logging.INFO, logger="crypto_mine.allocator.segments")
    # First prefetch (nothing to compare), then: exactly the target (kept), a fast one at a
    # clock far from 0 (doubled), a fast one at the maximum (kept, nothing logged), exactly ten
    # targets (kept), past them (halved, rounded down), down at the minimum (kept).
    times = [100.0, 100.0 + target, 100.5 + target, 101.0 + target]
    times += [times[-1] + slow, times[-1] + 2 * slow + 1]
    found = sizes(mongo, counter_name, policy, times)
    assert found == [301, 301, 602, 602, 602, 301]
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("segment size")]
    assert steps == [
        "segment size now 602 (last segment lasted 0.500 s)",
        "segment size now 301 (last segment lasted 11.000 s)",
    ]
    floor = SegmentPolicy(initial=101, minimum=50, maximum=101, target_seconds=target)
    caplog.clear()
    found = sizes(mongo, counter_name + "-floor", floor, [1.0, 20.0, 40.0, 60.0])
    assert found == [101, 50, 50, 50]  # 101 // 2, then never below the minimum
    assert all(isinstance(size, int) for size in found)
    assert len([r for r in caplog.records if r.getMessage().startswith("segment size")]) == 1


def test_start_waits_no_longer_than_told(own_mongo: MongoServer) -> None:
    own_mongo.stop()

    async def main() -> tuple[float, bool]:
        # The fetch would try for about 4 s: two attempts of 2 s.
        slow = RetryPolicy(retries=1, base_seconds=0.01, attempt_timeout=2.0)
        async with counter(own_mongo.uri, "unreachable", retry=slow) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            began = time.monotonic()
            await allocator.start(wait=0.2)
            elapsed = time.monotonic() - began
            still_fetching = allocator._fetch is not None
            await allocator.close()
            return elapsed, still_fetching

    elapsed, still_fetching = run(main)
    collect_cancelled_sockets()
    assert elapsed < 1.5
    assert still_fetching  # start() went on; the fetch did not stop with it


def test_a_failed_fetch_is_logged_and_idle_returns(
    own_mongo: MongoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with counter(own_mongo.uri, "failing", retry=QUICK) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=10)  # one good segment, then MongoDB goes away
            own_mongo.stop()
            unwatched = allocator._start_fetch(100, "prefetch")  # a prefetch nobody awaits
            await asyncio.wait({unwatched})  # (takes neither its result nor its error)
            del unwatched
            gc.collect()  # its failure was taken by its callback: asyncio reports nothing
            allocator._start_fetch(100, "prefetch")
            await allocator.idle()  # the fetch failed; idle() does not raise it
            with pytest.raises(CounterUnavailable):
                await allocator.allocate(500)
            await allocator.close()
        gc.collect()

    run(main)
    collect_cancelled_sockets()
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if m.startswith("segment fetch failed: ")]
    assert len(failed) >= 1, messages
    assert all("MongoDB unreachable" in m for m in failed), failed  # the error itself
    assert not any("never retrieved" in m for m in messages), messages


def test_a_good_fetch_logs_no_failure(
    mongo: MongoServer, counter_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crypto_mine.allocator.segments")

    async def main() -> None:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=10)
            await allocator.close()

    run(main)
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


def test_close_cuts_off_the_fetch_in_flight(own_mongo: MongoServer) -> None:
    own_mongo.stop()  # a fetch that would wait out its retries

    async def main() -> tuple[bool, float]:
        async with counter(own_mongo.uri, "cut-off", retry=RetryPolicy(attempt_timeout=5.0)) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            task = allocator._start_fetch(100, "prefetch")
            await asyncio.sleep(0.1)
            began = time.monotonic()
            await allocator.close()  # cancels it; raises nothing
            return task.cancelled(), time.monotonic() - began

    cancelled, elapsed = run(main)
    collect_cancelled_sockets()
    assert cancelled
    assert elapsed < 2
