"""Phase 1's CPU split pins the servers and the load apart, and puts everything back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.cpus import servers_apart
from bench.probes import group_stats

# A process that starts a child, then both sleep: a server and its uvicorn worker.
PARENT = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Two process groups of two processes each, running."""
    leaders = [
        subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=True) for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 10
        while any(len(group_stats(leader.pid)) < 2 for leader in leaders):
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.05)
        yield [leader.pid for leader in leaders]
    finally:
        for leader in leaders:
            os.killpg(leader.pid, 9)
            leader.wait()


def affinities(group: int) -> list[set[int]]:
    return [os.sched_getaffinity(pid) for pid in group_stats(group)]


def test_servers_and_load_on_separate_cpus(groups: list[int]) -> None:
    allowed = os.sched_getaffinity(0)
    server, load = groups
    with servers_apart([server], [load], 1) as note:
        if len(allowed) < 2:
            assert note.startswith("not pinned"), note
            return
        first, rest = min(allowed), allowed - {min(allowed)}
        assert affinities(server) == [{first}] * 2
        assert affinities(load) == [rest] * 2
        assert os.sched_getaffinity(0) == rest  # this process, and the wrk it would start
        listed = ",".join(str(cpu) for cpu in sorted(rest))
        assert note == f"server on CPU {first}, wrk and Redis on CPU {listed}"
    assert affinities(server) + affinities(load) == [allowed] * 4
    assert os.sched_getaffinity(0) == allowed


def test_no_spare_cpu_pins_nothing(groups: list[int]) -> None:
    allowed = os.sched_getaffinity(0)
    with servers_apart(groups[:1], groups[1:], len(allowed)) as note:
        assert note.startswith(f"not pinned: {len(allowed)} CPU(s)")
        assert affinities(groups[0]) + affinities(groups[1]) == [allowed] * 4
