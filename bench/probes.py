"""What the harness reads while load runs: CPU time of process groups, Redis counters, metrics."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

TICKS = os.sysconf("SC_CLK_TCK")
# Commands the harness itself sends (and connection set-up of its clients): not the system's.
OWN_COMMANDS = {"info", "config|resetstat", "monitor", "echo", "client|setinfo", "ping"}


def group_stats(group: int) -> dict[int, list[str]]:
    """The ``/proc/<pid>/stat`` fields (after the command name) of a process group's live
    processes, by pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            found[int(stat.parent.name)] = fields
    return found


def cpu_seconds(group: int) -> float:
    """CPU time (user + system) of the live processes of a process group and their reaped
    children."""
    stats = group_stats(group).values()
    return sum(int(value) for fields in stats for value in fields[11:15]) / TICKS


class CpuMeter:
    """Share of one core each named process group used between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.before: dict[str, float] = {}
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(group) for name, group in self.groups.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {
            name: round(100 * (cpu_seconds(group) - self.before[name]) / elapsed, 1)
            for name, group in self.groups.items()
        }


@dataclass
class RedisCounters:
    """Calls per command (``INFO commandstats``) and read events, over a window."""

    calls: Counter[str] = field(default_factory=Counter)
    reads: int = 0

    @classmethod
    def read(cls, client: redis.Redis) -> RedisCounters:
        stats: dict[str, Any] = client.info("commandstats")
        calls: Counter[str] = Counter()
        for name, value in stats.items():
            command = name.removeprefix("cmdstat_")
            if command not in OWN_COMMANDS:
                calls[command] = int(value["calls"])
        return cls(calls, int(client.info("stats")["total_reads_processed"]))

    def __add__(self, other: RedisCounters) -> RedisCounters:
        return RedisCounters(self.calls + other.calls, self.reads + other.reads)

    def __sub__(self, other: RedisCounters) -> RedisCounters:
        calls = Counter(self.calls)
        calls.subtract(other.calls)
        # Two INFO calls of the harness are read events too.
        return RedisCounters(+calls, max(0, self.reads - other.reads - 2))


def metric(exposition: str, sample: str) -> float:
    """The value of one sample (name with labels, exactly) of an exposition; 0 if absent."""
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def accepted_clicks(api_url: str) -> int:
    """``mining_click_requests_total{status="202"}`` of the api."""
    text = httpx.get(f"{api_url}/api/metrics", timeout=10).text
    return int(metric(text, 'mining_click_requests_total{status="202"}'))


def machine() -> dict[str, Any]:
    model = "unknown"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with Path("/proc/meminfo").open() as info:
        for line in info:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "redis": _version(["redis-server", "--version"], r"v=(\S+)"),
        "wrk": _version(["wrk", "-v"], r"wrk (\S+)"),
    }


def _version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"
