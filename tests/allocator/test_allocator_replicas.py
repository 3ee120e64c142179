"""Three allocator processes on one MongoDB server, many clients, one replica killed midway.

What is proven, for the ids of every successful response:
- segment and strict mode: no id is handed out twice, across replicas and a ``kill -9`` +
  restart; a restarted replica hands out only ids above everything reserved before the kill;
- strict mode without a kill: the ids are exactly ``ID_START..last_id``, one gap-free sequence,
  and a client calling replicas one after another gets increasing ids -- also when MongoDB is
  frozen for longer than a try's timeout while every replica has a write in flight, so that
  answers are lost and writes applied late;
- strict mode with a kill: the only missing ids are at most those of the requests that were in
  flight in the killed process (a claim may have been applied with nobody left to answer).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.servers import MongoServer
from tests.allocator.processes import AllocatorProcess, counter_value, metric_value
from tests.support.allocator import AUTH

START = 1_000
REQUESTS = 1_200
CLIENTS = 24
AFTER_RESTART = 60
# Longer than a try's timeout in the freeze run (ID_MONGO_TIMEOUT_MS=300), well within the
# tries (4 x 300 ms + backoffs) and the deadline (ID_REQUEST_DEADLINE_MS, 4 s) of a request.
FREEZE = 0.9


@dataclass
class Attempt:
    replica: int
    count: int
    began: float
    ids: list[int] = field(default_factory=list)
    failure: str = ""


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    sequential: list[list[int]] = field(default_factory=list)
    killed_at: float = 0.0
    restarted_at: float = 0.0
    last_before_restart: int = 0

    @property
    def issued(self) -> list[int]:
        return [i for a in self.attempts for i in a.ids] + [
            i for ids in self.sequential for i in ids
        ]


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest, mongo: MongoServer, tmp_path: Path, counter_name: str
) -> Iterator[list[AllocatorProcess]]:
    """Three replicas; the parameter is the mode, or a dict of extra environment with it."""
    extra = (
        request.param if isinstance(request.param, dict) else {"ID_ALLOCATOR_MODE": request.param}
    )
    env = {
        "ID_COUNTER_NAME": counter_name,
        "ID_START": str(START),
        "ID_SEGMENT_SIZE": "100",
        "ID_SEGMENT_MAX": "1000",
        **extra,
    }
    services = [
        AllocatorProcess(tmp_path, mongo.uri, env, f"replica-{n}").start() for n in range(3)
    ]
    for service in services:
        service.wait_ready()
    yield services
    for service in services:
        service.stop()


async def drive(services: list[AllocatorProcess], fault: str, mongo: MongoServer, name: str) -> Run:
    """Clients until ``REQUESTS`` attempts and the fault (none, kill, freeze) are done."""
    run = Run()
    rng = random.Random(7)
    restarted = asyncio.Event()
    third_done = asyncio.Event()
    if fault == "none":
        restarted.set()

    def finished() -> bool:
        # Also 60 attempts after a restart, so that the restarted replica is asked too (on a
        # slow machine the restart may end after the last of the REQUESTS).
        recent = run.attempts[-AFTER_RESTART:]
        return (
            len(run.attempts) >= REQUESTS
            and restarted.is_set()
            and len(recent) == AFTER_RESTART
            and all(a.began > run.restarted_at for a in recent)
        )

    async def request(http: httpx.AsyncClient, replica: int, count: int) -> Attempt:
        attempt = Attempt(replica, count, time.monotonic())
        try:
            response = await http.post(
                f"{services[replica].url}/v1/ids", params={"count": count}, headers=AUTH
            )
        except httpx.ConnectError:
            attempt.failure = "refused"
        except httpx.TransportError as exc:
            attempt.failure = f"in flight: {type(exc).__name__}"
        else:
            if response.status_code == 200:
                attempt.ids = response.json()["ids"]
                assert len(attempt.ids) == count
            else:
                attempt.failure = f"status {response.status_code}"
        return attempt

    async def client(http: httpx.AsyncClient) -> None:
        while not finished():
            count = 1 if rng.random() < 0.7 else rng.randint(2, 200)
            replica = rng.randrange(3)
            for shift in range(3):  # like a caller retrying on another replica
                attempt = await request(http, (replica + shift) % 3, count)
                run.attempts.append(attempt)
                if len(run.attempts) >= REQUESTS // 3:
                    third_done.set()
                if not attempt.failure:
                    break

    async def sequential(http: httpx.AsyncClient) -> None:
        turn = 0
        while not finished():
            attempt = await request(http, turn % 3, 3)
            turn += 1
            if attempt.failure:
                run.attempts.append(attempt)  # its ids may be lost like any other's
            else:
                run.sequential.append(attempt.ids)

    async def killer() -> None:
        await third_done.wait()
        # Freeze MongoDB so that requests pile up inside every replica, waiting on their $inc,
        # then kill one replica: its requests die in flight, some of their $inc already sent.
        mongo.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(0.3)
            services[0].kill9()
            run.killed_at = time.monotonic()
        finally:
            mongo.signal(signal.SIGCONT)
        await asyncio.sleep(0.3)
        # Everything the killed replica reserved is at most this value.
        run.last_before_restart = await asyncio.to_thread(last_id, mongo.uri, name)
        services[0].start()
        await asyncio.to_thread(services[0].wait_ready)
        run.restarted_at = time.monotonic()
        restarted.set()

    async def freezer() -> None:
        await third_done.wait()
        # Every replica has a claim in flight: their tries time out, their writes wait in the
        # server's sockets and are applied when it goes on, after the replicas stopped waiting.
        mongo.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(FREEZE)
        finally:
            mongo.signal(signal.SIGCONT)
        restarted.set()

    limits = httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        tasks = [client(http) for _ in range(CLIENTS)] + [sequential(http)]
        if fault == "kill":
            tasks.append(killer())
        elif fault == "freeze":
            tasks.append(freezer())
        await asyncio.gather(*tasks)
    return run


def last_id(mongo_uri: str, name: str) -> int:
    value = counter_value(mongo_uri, name)
    assert value is not None, f"counter {name} missing"
    return value


def assert_unique(run: Run, last: int) -> None:
    issued = run.issued
    assert len(issued) == len(set(issued)), "an id was handed out twice"
    assert min(issued) >= START
    assert max(issued) <= last


@pytest.mark.parametrize("replicas", ["segment"], indirect=True)
def test_segment_mode_never_duplicates_across_replicas_and_a_kill(
    replicas: list[AllocatorProcess], mongo: MongoServer, counter_name: str
) -> None:
    run = asyncio.run(drive(replicas, "kill", mongo, counter_name))
    last = last_id(mongo.uri, counter_name)
    assert_unique(run, last)
    after_restart = [
        i for a in run.attempts if a.replica == 0 and a.began > run.restarted_at for i in a.ids
    ]
    assert after_restart, "the restarted replica served nothing"
    assert min(after_restart) > run.last_before_restart
    failed = [a for a in run.attempts if a.failure]
    assert {a.replica for a in failed} == {0}
    # What segment mode leaves unused: the rest of every replica's buffer, the killed one's too.
    unused = last - START + 1 - len(run.issued)
    in_flight = sum(1 for a in failed if a.failure.startswith("in flight"))
    print(f"segment mode: {len(run.issued)} ids issued, {unused} unused, {in_flight} in flight")


def metric_sum(services: list[AllocatorProcess], sample: str) -> float:
    return sum(metric_value(service.metrics(), sample) for service in services)


@pytest.mark.parametrize(
    ("replicas", "fault"),
    [
        ("strict", "none"),
        ({"ID_ALLOCATOR_MODE": "strict", "ID_MONGO_TIMEOUT_MS": "300"}, "freeze"),
    ],
    indirect=["replicas"],
    ids=["steady", "mongodb-frozen"],
)
def test_strict_mode_is_one_gap_free_ordered_sequence(
    replicas: list[AllocatorProcess], fault: str, mongo: MongoServer, counter_name: str
) -> None:
    run = asyncio.run(drive(replicas, fault, mongo, counter_name))
    last = last_id(mongo.uri, counter_name)
    assert not [a for a in run.attempts if a.failure]
    assert sorted(run.issued) == list(range(START, last + 1))
    # One caller, replica after replica: every answer is above the previous one.
    flat = [i for ids in run.sequential for i in ids]
    assert len(run.sequential) > 10
    assert flat == sorted(flat)
    assert metric_sum(replicas, 'id_allocator_errors_total{kind="unresolved"}') == 0
    assert metric_sum(replicas, 'id_allocator_errors_total{kind="gave_up"}') == 0
    timeouts = metric_sum(replicas, 'id_allocator_errors_total{kind="timeout"}')
    confirmed = sum(
        service.log.read_text().count("a lost answer was applied") for service in replicas
    )
    conflicts = metric_sum(replicas, "id_allocator_strict_conflicts_total")
    claims = metric_sum(replicas, 'id_allocator_segment_fetches_total{trigger="strict"}')
    if fault == "freeze":
        assert timeouts > 0, "the freeze caught no request in flight"
    print(
        f"strict mode, {fault}: {len(run.issued)} ids in {claims:.0f} claims, "
        f"{conflicts:.0f} conflicts, {timeouts:.0f} timed-out tries, "
        f"{confirmed} late writes confirmed"
    )


@pytest.mark.parametrize("replicas", ["strict"], indirect=True)
def test_strict_mode_kill_loses_only_ids_of_requests_in_flight(
    replicas: list[AllocatorProcess], mongo: MongoServer, counter_name: str
) -> None:
    run = asyncio.run(drive(replicas, "kill", mongo, counter_name))
    last = last_id(mongo.uri, counter_name)
    assert_unique(run, last)
    failed = [a for a in run.attempts if a.failure]
    assert {a.replica for a in failed} == {0}
    # A request whose connection broke mid-way may have reserved its ids before the kill; the
    # client's clock cannot tell the last ones sent before the kill from the first ones after.
    in_flight = [a for a in failed if a.failure.startswith("in flight")]
    assert in_flight, "the kill caught no request in flight"
    missing = set(range(START, last + 1)) - set(run.issued)
    assert len(missing) <= sum(a.count for a in in_flight), (len(missing), in_flight)
    flat = [i for ids in run.sequential for i in ids]
    assert flat == sorted(flat)
    print(f"strict mode with kill: {len(missing)} ids lost by {len(in_flight)} requests in flight")
