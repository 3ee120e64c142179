"""The cost of one request in every component, over one measured stretch of load.

A :class:`Snapshot` reads, at one moment: the CPU time of each process group (the api, the
worker pod, Redis, MongoDB), Redis's own counters (``INFO cpu``: the server's CPU time;
``INFO stats``: bytes in and out; ``INFO commandstats``: commands, Lua's included), the MongoDB
commands the api and the worker sent (the driver's command histogram in their metrics), and per
collection the documents and their bytes (``collStats``). Two snapshots and a number of requests
give the cost of one request (:func:`per_request`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from pymongo.database import Database

from crypto_mine.common.names import Collections, Metrics

from .probes import RedisCounters, cpu_seconds

COLLECTIONS = (Collections.clicks, Collections.balances, Collections.batches)
COMMAND = re.compile(
    rf'^{Metrics.mongo_command_duration}_count\{{(?:[^}}]*,)?command="([^"]+)"[^}}]*\}} (\S+)$'
)


def driver_commands(expositions: list[str]) -> dict[str, float]:
    """MongoDB commands sent, by command name, summed over the given metric expositions."""
    found: dict[str, float] = {}
    for text in expositions:
        for line in text.splitlines():
            match = COMMAND.match(line)
            if match:
                found[match[1]] = found.get(match[1], 0.0) + float(match[2])
    return found


@dataclass(frozen=True)
class Snapshot:
    cpu: dict[str, float]  # CPU seconds by process group
    redis_cpu: float  # seconds, the server's own count
    redis_commands: int
    redis_bytes_in: int
    redis_bytes_out: int
    mongo_commands: dict[str, float]
    documents: dict[str, int]  # by collection
    stored_bytes: dict[str, int]  # by collection (collStats size)

    @classmethod
    def read(
        cls,
        groups: dict[str, int],
        client: redis.Redis,
        database: Database[Any],
        expositions: list[Callable[[], str]],
    ) -> Snapshot:
        cpu_info: dict[str, Any] = client.info("cpu")
        stats: dict[str, Any] = client.info("stats")
        sizes = {name: database.command("collStats", name) for name in COLLECTIONS}
        return cls(
            cpu={name: cpu_seconds(group) for name, group in groups.items()},
            redis_cpu=float(cpu_info["used_cpu_sys"]) + float(cpu_info["used_cpu_user"]),
            redis_commands=sum(RedisCounters.read(client).calls.values()),
            redis_bytes_in=int(stats["total_net_input_bytes"]),
            redis_bytes_out=int(stats["total_net_output_bytes"]),
            mongo_commands=driver_commands([read() for read in expositions]),
            documents={name: int(size.get("count", 0)) for name, size in sizes.items()},
            stored_bytes={name: int(size.get("size", 0)) for name, size in sizes.items()},
        )


def per_request(before: Snapshot, after: Snapshot, requests: int) -> dict[str, Any]:
    """What one of ``requests`` requests cost between two snapshots: CPU µs by process group
    (and in all), Redis's CPU µs, commands and bytes, MongoDB's commands, documents written and
    bytes stored."""
    n = max(requests, 1)

    def each(value: float, digits: int = 2) -> float:
        return round(value / n, digits)

    cpu = {name: each((after.cpu[name] - before.cpu[name]) * 1e6, 1) for name in after.cpu}
    commands = {
        name: each(count - before.mongo_commands.get(name, 0.0), 3)
        for name, count in after.mongo_commands.items()
        if count > before.mongo_commands.get(name, 0.0)
    }
    documents = {
        name: each(after.documents[name] - before.documents[name], 3) for name in after.documents
    }
    stored = {
        name: each(after.stored_bytes[name] - before.stored_bytes[name], 1)
        for name in after.stored_bytes
    }
    return {
        "requests": requests,
        "cpu_us": {**cpu, "all": round(sum(cpu.values()), 1)},
        "redis": {
            "cpu_us": each((after.redis_cpu - before.redis_cpu) * 1e6, 1),
            "commands": each(after.redis_commands - before.redis_commands, 3),
            "bytes_in": each(after.redis_bytes_in - before.redis_bytes_in, 1),
            "bytes_out": each(after.redis_bytes_out - before.redis_bytes_out, 1),
        },
        "mongodb": {
            "commands": {**commands, "all": round(sum(commands.values()), 3)},
            "documents": {**documents, "all": round(sum(documents.values()), 3)},
            "stored_bytes": {**stored, "all": round(sum(stored.values()), 1)},
        },
    }
