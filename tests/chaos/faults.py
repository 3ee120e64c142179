"""Faults injected into the running stack: SIGKILL of processes, restarts of the data stores."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.stack import Stack

KINDS = (
    "api worker process SIGKILL",
    "api pod SIGKILL + restart",
    "worker pod SIGKILL + restart",
    "worker process SIGKILL",
    "id-allocator SIGKILL + restart",
    "redis SIGKILL + restart (AOF)",
    "mongodb SIGKILL + restart",
)


@dataclass
class FaultLog:
    injected: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    redis_shards: Counter[int] = field(default_factory=Counter)  # whose Redis was killed

    @property
    def total(self) -> int:
        return sum(self.injected.values())


class Injector:
    """Injects one fault of each kind in turn (shuffled per round) every ``interval`` seconds;
    with several click shards, a round kills each shard's Redis once."""

    def __init__(self, stack: Stack, rng: random.Random, interval: float) -> None:
        self.stack = stack
        self.rng = rng
        self.interval = interval
        self.log = FaultLog()

    def inject(self, kind: str) -> None:
        stack = self.stack
        if kind.startswith("api worker process"):
            os.kill(self.rng.choice(stack.api.workers()), signal.SIGKILL)
        elif kind.startswith("api pod"):
            stack.api.kill_group()
            time.sleep(self.rng.uniform(0.2, 1.0))
            stack.api.start().wait_ready(60)
        elif kind.startswith("worker pod"):
            pod = self.rng.choice(stack.workers)
            pod.kill_group()
            time.sleep(self.rng.uniform(0.2, 1.0))
            pod.start()
        elif kind.startswith("worker process"):
            pod = self.rng.choice(stack.workers)
            os.kill(self.rng.choice(pod.spawned_children()), signal.SIGKILL)
        elif kind.startswith("id-allocator"):
            stack.allocator.kill_group()
            time.sleep(self.rng.uniform(0.2, 1.0))
            stack.allocator.start().wait_ready(60)
        elif kind.startswith("redis"):
            shard = sum(self.log.redis_shards.values()) % len(stack.redises)  # in turn
            self.log.redis_shards[shard] += 1
            server = stack.redises[shard]
            server.kill9()
            time.sleep(self.rng.uniform(0.3, 1.5))
            server.start()
        elif kind.startswith("mongodb"):
            stack.mongo.kill9()
            time.sleep(self.rng.uniform(0.3, 1.5))
            stack.mongo.start()
        else:
            raise ValueError(f"unknown fault {kind!r}")

    async def run(self, stop: asyncio.Event, started: float) -> None:
        """One fault every ``interval`` seconds on average, counted from fault to fault."""
        kinds: list[str] = []
        due = time.monotonic()
        while not stop.is_set():
            due += self.interval * self.rng.uniform(0.6, 1.4)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            if stop.is_set():
                return
            if not kinds:
                redis_per_shard = ["redis SIGKILL + restart (AOF)"] * (len(self.stack.redises) - 1)
                kinds = [*KINDS, *redis_per_shard]
                self.rng.shuffle(kinds)
            kind = kinds.pop()
            try:
                await asyncio.to_thread(self.inject, kind)
            except (IndexError, ProcessLookupError):
                continue  # the process was already gone (restarting): not a fault of ours
            self.log.injected[kind] += 1
            self.log.timeline.append((round(time.monotonic() - started, 1), kind))
