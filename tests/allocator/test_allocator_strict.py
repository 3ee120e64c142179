"""Strict mode's confirmed claims: the MongoDB operators they rest on, and lost replies for real.

A reply is lost for real by freezing the nx-27017 server (SIGSTOP) the moment the claim's
compare-and-set is sent, for longer than a try's timeout, then letting it go on (SIGCONT): the
write is applied late, after the allocator gave up waiting for its answer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from crypto_mine.allocator.counter import PRUNE_AGE, Claim, Counter, CounterUnavailable, IdRange
from crypto_mine.allocator.settings import RetryPolicy
from crypto_mine.allocator.strict import StrictAllocator
from devstack.servers import MongoServer
from tests.allocator.inprocess import PATIENT, counter, flat, run
from tests.allocator.processes import COUNTERS_DB


class FrozenWrite(monitoring.CommandListener):
    """Freezes the server as the next ``update`` is sent and lets it go ``pause`` s later.

    Until the frozen write shows in the counter, the client's next ``find`` is held back, so
    that the write is applied before the claim reads the counter again (it would also be
    correct the other way round; this makes the late write the one the test sees).
    """

    def __init__(self, server: MongoServer, name: str, pause: float) -> None:
        self.server = server
        self.name = name
        self.pause = pause
        self.armed = False
        self.frozen_at: int | None = None
        self.updates = 0
        self.thawed = threading.Event()
        self._timer: threading.Timer | None = None

    def freeze_next_write(self, last_id: int) -> None:
        self.frozen_at = last_id
        self.armed = True

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.updates += 1
            if self.armed:
                self.armed = False
                self.server.signal(signal.SIGSTOP)
                self._timer = threading.Timer(self.pause, self.thaw)
                self._timer.start()
        elif event.command_name == "find" and self.frozen_at is not None:
            self._wait_for_the_late_write()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def thaw(self) -> None:
        self.server.signal(signal.SIGCONT)
        self.thawed.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.thaw()

    def _wait_for_the_late_write(self) -> None:
        assert self.frozen_at is not None
        if not self.thawed.wait(10):
            return
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.server.uri, serverSelectionTimeoutMS=3000
        )
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                doc = client[COUNTERS_DB]["counters"].find_one({"_id": self.name})
                if doc is not None and doc["last_id"] > self.frozen_at:
                    self.frozen_at = None
                    return
                time.sleep(0.005)
        finally:
            client.close()
        raise AssertionError("the frozen write was never applied")


@pytest.fixture
def frozen(own_mongo: MongoServer, counter_name: str) -> Iterator[FrozenWrite]:
    listener = FrozenWrite(own_mongo, counter_name, pause=0.4)
    yield listener
    listener.close()


def counter_doc(uri: str, name: str) -> dict[str, Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=3000)
    try:
        doc = client[COUNTERS_DB]["counters"].find_one({"_id": name})
    finally:
        client.close()
    assert doc is not None
    return doc


def wait_for_last_id(uri: str, name: str, above: int) -> None:
    deadline = time.monotonic() + 10
    while counter_doc(uri, name)["last_id"] <= above:
        assert time.monotonic() < deadline, f"counter {name} stayed at {above}"
        time.sleep(0.01)


def test_the_operators_claims_rest_on(mongo: MongoServer, counter_name: str) -> None:
    """Compare-and-set with update_one; map keys set and unset by dotted paths; projection."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
    counters = client[COUNTERS_DB]["counters"]
    try:
        counters.insert_one({"_id": counter_name, "last_id": 10})
        won = counters.update_one(
            {"_id": counter_name, "last_id": 10},
            {"$set": {"last_id": 13, "latest.a-K_1": "1:11:100", "latest.old": "7:1:5"}},
        )
        assert (won.matched_count, won.modified_count) == (1, 1)
        stale = counters.update_one(
            {"_id": counter_name, "last_id": 10},
            {"$set": {"last_id": 99, "latest.a-K_1": "2:11:100"}},
        )
        assert stale.matched_count == 0
        # Set one key and remove another in one write.
        both = counters.update_one(
            {"_id": counter_name, "last_id": 13},
            {"$set": {"last_id": 20, "latest.a-K_1": "2:14:101"}, "$unset": {"latest.old": ""}},
        )
        assert both.matched_count == 1
        assert counters.find_one({"_id": counter_name}) == {
            "_id": counter_name,
            "last_id": 20,
            "latest": {"a-K_1": "2:14:101"},
        }
        assert counters.find_one({"_id": counter_name}, {"last_id": 1}) == {
            "_id": counter_name,
            "last_id": 20,
        }
    finally:
        client.close()


def test_one_compare_and_set_per_value_wins_under_concurrency(
    mongo: MongoServer, counter_name: str
) -> None:
    """16 threads, each with its own connection, race for every value: exactly one wins it."""
    winners: list[list[int]] = [[] for _ in range(16)]
    setup: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
    setup[COUNTERS_DB]["counters"].insert_one({"_id": counter_name, "last_id": 0})
    setup.close()

    def racer(k: int) -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri, maxPoolSize=1)
        counters = client[COUNTERS_DB]["counters"]
        try:
            while True:
                doc = counters.find_one({"_id": counter_name})
                assert doc is not None
                last = doc["last_id"]
                if last >= 300:
                    return
                done = counters.update_one(
                    {"_id": counter_name, "last_id": last}, {"$set": {"last_id": last + 1}}
                )
                if done.matched_count:
                    winners[k].append(last + 1)
        finally:
            client.close()

    threads = [threading.Thread(target=racer, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    won = sorted(v for values in winners for v in values)
    assert won == list(range(1, 301))
    assert sum(1 for values in winners if values) > 1


def test_settle_tells_applied_from_not_yet_from_never() -> None:
    claim = Claim(3, 5, unsure={100, 200})
    # This process's entry names an earlier claim: ours was not applied. The write against 100
    # never will be (the counter is past it); the one against 200 still may.
    assert claim.settle(200, "2:150:1700000000") is None
    assert claim.unsure == {200}
    assert claim.settle(200, None) is None
    assert claim.settle(200, "garbage") is None
    assert claim.unsure == {200}
    # Now the entry names this claim: that is its range.
    assert claim.settle(205, "3:201:1700000001") == IdRange(201, 205)


def test_each_process_keeps_one_entry_and_new_ones_remove_the_gone(
    mongo: MongoServer, counter_name: str
) -> None:
    now = int(time.time())
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
    counters = client[COUNTERS_DB]["counters"]
    counters.insert_one(
        {
            "_id": counter_name,
            "last_id": 0,
            "latest": {
                "gone": f"9:1:{now - 2 * PRUNE_AGE}",
                "revived": f"4:1:{now - 2 * PRUNE_AGE}",
                "idle": f"3:1:{now - PRUNE_AGE // 2}",
            },
        }
    )

    class Revive(monitoring.CommandListener):
        """Between the new process's first read and its write, "revived" claims again."""

        done = False

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            pass

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            if event.command_name == "find" and not self.done:
                self.done = True
                counters.update_one(
                    {"_id": counter_name},
                    {"$set": {"latest.revived": f"5:1:{now}"}, "$inc": {"last_id": 1}},
                )

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    async def main() -> tuple[list[IdRange], list[str]]:
        async with (
            counter(mongo.uri, counter_name, listeners=[Revive()]) as a,
            counter(mongo.uri, counter_name) as b,
        ):
            ranges = [
                await c.claim(2, time.monotonic() + PATIENT.deadline) for c in (a, b, a, b, a)
            ]
            return ranges, [a.key, b.key]

    try:
        ranges, keys = run(main)
        doc = counters.find_one({"_id": counter_name})
    finally:
        client.close()
    assert doc is not None
    assert flat(ranges) == list(range(2, 12))
    # One entry per process, its latest claim; "gone" removed, "revived" kept since it changed
    # after it was read, "idle" kept since it is not old enough.
    assert doc["latest"] == {
        keys[0]: f"3:{ranges[4].first}:{doc['latest'][keys[0]].rsplit(':', 1)[1]}",
        keys[1]: f"2:{ranges[3].first}:{doc['latest'][keys[1]].rsplit(':', 1)[1]}",
        "revived": f"5:1:{now}",
        "idle": f"3:1:{now - PRUNE_AGE // 2}",
    }


def test_claims_continue_a_counter_made_by_inc(mongo: MongoServer, counter_name: str) -> None:
    """A counter written by segment mode (or an older version) has no claims fields yet."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
    client[COUNTERS_DB]["counters"].insert_one({"_id": counter_name, "last_id": 41})
    client.close()

    async def main() -> IdRange:
        async with counter(mongo.uri, counter_name) as c:
            return await c.claim(3, time.monotonic() + PATIENT.deadline)

    assert run(main) == IdRange(42, 44)
    doc = counter_doc(mongo.uri, counter_name)
    assert doc["last_id"] == 44
    assert [entry.split(":")[:2] for entry in doc["latest"].values()] == [["1", "42"]]


def test_a_bad_counter_document_is_refused(mongo: MongoServer, counter_name: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
    client[COUNTERS_DB]["counters"].insert_one({"_id": counter_name, "last_id": "12"})
    client.close()

    async def main() -> None:
        async with counter(mongo.uri, counter_name) as c:
            with pytest.raises(CounterUnavailable, match="no integer"):
                await c.claim(1, time.monotonic() + PATIENT.deadline)

    run(main)


def test_concurrent_requests_share_claims_in_arrival_order(
    mongo: MongoServer, counter_name: str
) -> None:
    arrivals: list[int] = []

    async def request(allocator: StrictAllocator, k: int) -> list[int]:
        await asyncio.sleep(k * 0.0005)
        arrivals.append(k)  # allocate() queues the request before its first await
        return flat(await allocator.allocate(1 + k % 5))

    async def main() -> tuple[list[list[int]], StrictAllocator]:
        async with counter(mongo.uri, counter_name) as c:
            allocator = StrictAllocator(c)
            results = await asyncio.gather(*(request(allocator, k) for k in range(300)))
            await allocator.close()
            return list(results), allocator

    answers, allocator = run(main)
    # Requests queued behind a claim in flight are served by the next one, in arrival order.
    in_arrival_order = [i for k in arrivals for i in answers[k]]
    assert in_arrival_order == list(range(1, 1 + sum(1 + k % 5 for k in range(300))))
    assert allocator.served == 300
    assert 2 <= allocator.claims < 300
    assert allocator.counter.reservations == allocator.claims


def test_a_lost_reply_applied_late_is_confirmed_not_repeated(
    own_mongo: MongoServer, counter_name: str, frozen: FrozenWrite
) -> None:
    retry = RetryPolicy(retries=3, base_seconds=0.05, attempt_timeout=0.25)

    async def main() -> tuple[IdRange, IdRange, IdRange, Counter, float]:
        async with counter(own_mongo.uri, counter_name, retry=retry, listeners=[frozen]) as c:
            before = await c.claim(2, time.monotonic() + PATIENT.deadline)
            frozen.freeze_next_write(before.last)
            began = time.monotonic()
            late = await c.claim(5, time.monotonic() + retry.deadline)
            took = time.monotonic() - began
            after = await c.claim(1, time.monotonic() + PATIENT.deadline)
            return before, late, after, c, took

    before, late, after, c, took = run(main)
    # The reply to the write was lost (the try timed out), the write was applied when the
    # server went on, and the claim found it there instead of writing again.
    assert took > retry.attempt_timeout
    assert frozen.updates == 3  # before, the frozen one, after: no second write for `late`
    assert c.confirmed == 1
    assert c.unresolved == 0
    assert late == IdRange(before.last + 1, before.last + 5)
    assert after == IdRange(late.last + 1, late.last + 1)
    assert counter_doc(own_mongo.uri, counter_name)["last_id"] == after.last


def test_a_freeze_spanning_several_tries_leaves_no_gap(
    own_mongo: MongoServer, counter_name: str, frozen: FrozenWrite
) -> None:
    """The read-backs time out too; the claim keeps trying until the server is back."""
    retry = RetryPolicy(retries=5, base_seconds=0.05, attempt_timeout=0.25)
    frozen.pause = 1.2

    async def main() -> tuple[list[int], Counter]:
        async with counter(own_mongo.uri, counter_name, retry=retry, listeners=[frozen]) as c:
            allocator = StrictAllocator(c)
            first = flat(await allocator.allocate(3))
            frozen.freeze_next_write(first[-1])
            # Requests arriving while the server is frozen queue behind the claim in flight.
            answers = await asyncio.gather(
                allocator.allocate(4), *(allocator.allocate(1) for _ in range(20))
            )
            await allocator.close()
            return first + [i for r in answers for i in flat(r)], c

    issued, c = run(main)
    assert sorted(issued) == list(range(1, 28))
    assert c.confirmed == 1
    assert c.unresolved == 0
    assert counter_doc(own_mongo.uri, counter_name)["last_id"] == 27


def test_giving_up_after_a_lost_reply_reports_the_possible_gap(
    own_mongo: MongoServer,
    counter_name: str,
    frozen: FrozenWrite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one gap a live process can leave: MongoDB gone until the deadline after a write."""
    # Eleven tries would take 11 s; the deadline (3 s) must end the claim first. The write
    # stays in doubt past the deadline (frozen for 5 s); a busy machine may add up to 4 s.
    retry = RetryPolicy(retries=10, base_seconds=0.05, attempt_timeout=1.0, deadline=3.0)
    frozen.pause = 5.0

    async def main() -> tuple[IdRange, IdRange, Counter, float, str]:
        async with counter(own_mongo.uri, counter_name, retry=retry, listeners=[frozen]) as c:
            before = await c.claim(1, time.monotonic() + PATIENT.deadline)
            frozen.armed = True
            began = time.monotonic()
            with pytest.raises(CounterUnavailable, match="in time"):
                await c.claim(6, began + retry.deadline)
            took = time.monotonic() - began
            # The server goes on and applies the write nobody waits for any more.
            await asyncio.to_thread(wait_for_last_id, own_mongo.uri, counter_name, before.last)
            doc = await asyncio.to_thread(counter_doc, own_mongo.uri, counter_name)
            after = await c.claim(1, time.monotonic() + PATIENT.deadline)
            return before, after, c, took, doc["latest"][c.key]

    with caplog.at_level(logging.WARNING, "crypto_mine.allocator.counter"):
        before, after, c, took, entry = run(main)
    # Tries were left, the deadline was not: the claim gave up on time.
    assert retry.deadline - 0.1 < took < retry.deadline + 4.0 < 11 * retry.attempt_timeout, took
    gap = IdRange(before.last + 1, before.last + 6)
    assert c.unresolved == 1
    assert f"ids {gap.first}-{gap.last} may have been reserved" in caplog.text
    # The late write of the given-up claim (this process's second) was applied: exactly the
    # reported range is unused, and the next claim comes after it.
    assert entry.split(":")[:2] == ["2", str(gap.first)]
    assert after.first == gap.last + 1
