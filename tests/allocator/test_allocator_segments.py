"""The segment and strict allocators in-process, against a real MongoDB wire-protocol server."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from crypto_mine.allocator.counter import Counter, CounterUnavailable, IdRange
from crypto_mine.allocator.segments import SegmentAllocator
from crypto_mine.allocator.settings import RetryPolicy, SegmentPolicy
from crypto_mine.allocator.strict import StrictAllocator
from devstack.servers import MongoServer, free_port
from tests.allocator.inprocess import collect_cancelled_sockets, counter, flat, run

FIXED_100 = SegmentPolicy(initial=100, minimum=100, maximum=100, adaptive=False)


def test_concurrent_tasks_never_get_the_same_id(mongo: MongoServer, counter_name: str) -> None:
    rng = random.Random(4)
    counts = [rng.choice([1, 1, 1, 7, 40, 130]) for _ in range(400)]

    async def main() -> list[list[int]]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, SegmentPolicy(initial=50, minimum=50, maximum=400))
            results = await asyncio.gather(*(allocator.allocate(n) for n in counts))
            await allocator.close()
            return [flat(r) for r in results]

    results = run(main)
    assert [len(ids) for ids in results] == counts
    issued = [i for ids in results for i in ids]
    assert len(set(issued)) == len(issued) == sum(counts)
    assert min(issued) >= 1


def test_replicas_and_strict_mode_on_one_counter_share_nothing(
    mongo: MongoServer, counter_name: str
) -> None:
    async def replica(make: Callable[[Counter], Any], n: int) -> list[int]:
        async with counter(mongo.uri, counter_name, start=500) as c:
            allocator = make(c)
            results = await asyncio.gather(*(allocator.allocate(1 + i % 5) for i in range(n)))
            await allocator.close()
            return [i for r in results for i in flat(r)]

    async def main() -> list[list[int]]:
        return list(
            await asyncio.gather(
                replica(lambda c: SegmentAllocator(c, FIXED_100), 300),
                replica(lambda c: SegmentAllocator(c, FIXED_100), 300),
                replica(StrictAllocator, 150),
            )
        )

    per_replica = run(main)
    issued = [i for ids in per_replica for i in ids]
    assert len(set(issued)) == len(issued)
    assert min(issued) >= 500
    assert [len(ids) for ids in per_replica] == [900, 900, 450]


def test_prefetch_refills_before_the_buffer_runs_out(mongo: MongoServer, counter_name: str) -> None:
    """Paced requests never wait on MongoDB: every fetch after warm-up is a prefetch."""

    async def main() -> tuple[SegmentAllocator, int, list[int]]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=5)
            assert allocator.available == 100
            lowest: list[int] = []
            # The pace leaves a prefetch 20 round trips to MongoDB (as slow as this machine's
            # slowest of three now) before the 50 ids left at the threshold are gone.
            round_trip = 0.0
            for _ in range(3):
                began = time.monotonic()
                await c.peek()
                round_trip = max(round_trip, time.monotonic() - began)
            clients = 10
            pace = max(0.01, 20 * round_trip * clients / 50)

            async def client() -> None:
                for _ in range(60):
                    await allocator.allocate(1)
                    lowest.append(allocator.available)
                    await asyncio.sleep(pace)

            await asyncio.gather(*(client() for _ in range(clients)))
            await allocator.idle()
            await allocator.close()
            return allocator, c.reservations, lowest

    allocator, reservations, levels = run(main)
    assert allocator.waits == 0
    # 600 ids from segments of 100: the warm-up segment and at least five prefetches.
    assert allocator.fetches == reservations >= 6
    # The buffer never ran dry: it was refilled while half a segment was still left.
    assert min(levels) > 0


def test_short_pauses_are_enough_for_the_prefetch(mongo: MongoServer, counter_name: str) -> None:
    """Without prefetch each of the three segment boundaries would be a wait; with it, none is."""

    async def main() -> tuple[int, int, int]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            for _ in range(10):
                # 30 ids at a time, then a pause until the prefetch (if one started) landed.
                for _ in range(30):
                    await allocator.allocate(1)
                await allocator.idle()
            waits_paced = allocator.waits
            await allocator.close()
            return waits_paced, allocator.fetches, c.reservations

    waits, fetches, reservations = run(main)
    assert waits == 1  # the very first request found an empty buffer
    assert fetches == reservations


def test_large_count_spans_segments_with_one_fetch_sized_to_it(
    mongo: MongoServer, counter_name: str
) -> None:
    async def main() -> tuple[list[IdRange], int, int]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=5)
            ranges = await allocator.allocate(10_000)
            await allocator.idle()
            await allocator.close()
            return ranges, c.reservations, allocator.available

    ranges, reservations, left = run(main)
    ids = flat(ranges)
    assert len(ids) == len(set(ids)) == 10_000
    assert ids == sorted(ids)
    # Warm-up segment + one demand fetch of what was missing plus a segment; no prefetch needed.
    assert reservations == 2
    assert left == 100


def test_segment_size_adapts_to_demand(mongo: MongoServer, counter_name: str) -> None:
    now = [0.0]
    policy = SegmentPolicy(initial=100, minimum=50, maximum=800, target_seconds=1.0)

    async def drain(allocator: SegmentAllocator, pause: float) -> int:
        now[0] += pause
        await allocator.allocate(
            allocator.available - int(policy.threshold * allocator.segment_size) + 1
        )
        await allocator.idle()
        return allocator.segment_size

    async def main() -> list[int]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = SegmentAllocator(c, policy, clock=lambda: now[0])
            await allocator.start(wait=5)
            sizes = [await drain(allocator, 0.1) for _ in range(6)]
            sizes += [await drain(allocator, 2.0) for _ in range(2)]
            sizes += [await drain(allocator, 30.0) for _ in range(6)]
            await allocator.close()
            return sizes

    sizes = run(main)
    # First prefetch has nothing to compare with; then fast segments double up to the maximum,
    # normal ones keep the size, and slow ones halve down to the minimum.
    assert sizes == [100, 200, 400, 800, 800, 800, 800, 800, 400, 200, 100, 50, 50, 50]


def test_strict_mode_is_gap_free_and_honours_id_start(
    mongo: MongoServer, counter_name: str
) -> None:
    """Three replicas in one event loop, each with its own client, compete for one counter."""

    async def replica(requests: int) -> tuple[list[list[int]], Counter]:
        async with counter(mongo.uri, counter_name, start=100_000) as c:
            allocator = StrictAllocator(c)
            results = await asyncio.gather(
                *(allocator.allocate(1 + i % 3) for i in range(requests))
            )
            await allocator.close()
            return [flat(r) for r in results], c

    async def main() -> tuple[list[tuple[list[list[int]], Counter]], list[int]]:
        replicas = await asyncio.gather(*(replica(200) for _ in range(3)))
        # A later process with another ID_START continues the same counter.
        async with counter(mongo.uri, counter_name, start=5) as c:
            later = flat(await StrictAllocator(c).allocate(3))
        return list(replicas), later

    replicas, later = run(main)
    issued = [i for answers, _ in replicas for ids in answers for i in ids]
    assert sorted(issued) == list(range(100_000, 100_000 + len(issued)))
    assert len(issued) == 3 * sum(1 + i % 3 for i in range(200))
    assert later == [100_000 + len(issued) + k for k in range(3)]
    for answers, c in replicas:
        # Each request got its own count, consecutive, in one range.
        assert [len(ids) for ids in answers] == [1 + i % 3 for i in range(200)]
        assert all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in answers)
        # Concurrent requests of one replica share claims; a lost reply would show here.
        assert c.reservations < 200
        assert c.unresolved == 0


@pytest.mark.parametrize("mode", ["segment", "strict"])
def test_retries_back_off_then_give_up_in_bounded_time(mode: str) -> None:
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    retry = RetryPolicy(retries=3, base_seconds=0.1, attempt_timeout=0.2)

    async def main() -> tuple[Counter, float]:
        async with counter(dead, "nobody", retry=retry) as c:
            began = time.monotonic()
            reserve = (
                c.reserve(1, "demand")
                if mode == "segment"
                else c.claim(1, time.monotonic() + retry.deadline)
            )
            with pytest.raises(CounterUnavailable, match="after 4 tries"):
                await reserve
            return c, time.monotonic() - began

    c, elapsed = run(main)
    # Segment mode sends its $inc four times; strict mode never gets the counter to write to.
    assert c.attempts == (4 if mode == "segment" else 0)
    assert c.reservations == 0
    # Backoffs of 100, 200 and 400 ms with jitter x[0.5, 1.5): at least 350 ms in all; each try
    # is cut by its own timeout, so the whole never exceeds a few seconds.
    assert 0.35 <= elapsed < 4.5, elapsed
    collect_cancelled_sockets()


def test_buffer_serves_while_mongodb_is_down_then_fails_fast(own_mongo: MongoServer) -> None:
    retry = RetryPolicy(retries=3, base_seconds=0.05, attempt_timeout=0.2)

    async def main() -> tuple[int, float]:
        async with counter(own_mongo.uri, "outage", retry=retry) as c:
            allocator = SegmentAllocator(c, FIXED_100)
            await allocator.start(wait=5)
            own_mongo.stop()
            served = 0
            for _ in range(50):
                served += len(flat(await allocator.allocate(1)))
            began = time.monotonic()
            with pytest.raises(CounterUnavailable):
                await allocator.allocate(100)
            elapsed = time.monotonic() - began
            await allocator.close()
            return served, elapsed

    served, elapsed = run(main)
    collect_cancelled_sockets()
    assert served == 50
    assert elapsed < 4.5
