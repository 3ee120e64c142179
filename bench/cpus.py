"""Phase 1's CPUs: each HTTP server measured gets CPUs of its own, wrk and Redis the others.

Left to the scheduler, the server, wrk and Redis move between the CPUs of a small machine and
take turns on them, and the ratio of two runs of the same code moved by up to 0.2. With the
server on its own CPUs (as many as its uvicorn workers) and the load on the rest, the server
under test and its baseline get exactly the same share of the machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .probes import group_stats


def pin_group(group: int, cpus: set[int]) -> None:
    for pid in group_stats(group):
        with contextlib.suppress(ProcessLookupError):  # gone since it was listed
            os.sched_setaffinity(pid, cpus)


@contextlib.contextmanager
def servers_apart(servers: list[int], load: list[int], server_cpus: int) -> Iterator[str]:
    """Pins the process groups ``servers`` to the first ``server_cpus`` CPUs, and ``load``
    with this process (so the wrk it starts) to the rest; restores them all on exit. Yields a
    note of what it did (nothing on a machine without a CPU to spare)."""
    allowed = os.sched_getaffinity(0)
    ordered = sorted(allowed)
    if len(ordered) <= server_cpus:
        yield f"not pinned: {len(ordered)} CPU(s) for {server_cpus} server CPU(s) and the load"
        return
    mine, rest = set(ordered[:server_cpus]), set(ordered[server_cpus:])
    for group in servers:
        pin_group(group, mine)
    for group in load:
        pin_group(group, rest)
    os.sched_setaffinity(0, rest)
    try:
        yield f"server on CPU {_listed(mine)}, wrk and Redis on CPU {_listed(rest)}"
    finally:
        os.sched_setaffinity(0, allowed)
        for group in servers + load:
            pin_group(group, allowed)


def _listed(cpus: set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
