"""Overload: about three times the sustainable click rate against the real stack.

The sustainable rate is measured first: the worker pod is paused (SIGSTOP) while a backlog is
queued, then resumed, and the clicks it applies per second are what the stack can keep up
with. Then an open-loop client offers three times that, from many users and addresses, with
fresh keys. The api must answer only 202, 200, 429 or 503 (the last two with Retry-After),
keep the queue within ``MINING_QUEUE_MAX_DEPTH`` and its memory bounded; once the load stops,
the backlog drains and every accepted click is applied.

    python -m tests.chaos.overload [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from crypto_mine.common.names import Keys
from tests.support.runs import new_run
from tests.support.stack import Stack

from .rawhttp import Connection, post
from .verify import completed_records, wait_drained

MAX_DEPTH = 2000
CLICKS = 10  # per request
USERS = 400
MEMORY_HEADROOM_MIB = 64


@dataclass
class OverloadReport:
    sustainable: float  # clicks/s the worker applied in calibration
    offered: float  # clicks/s offered
    achieved: float  # clicks/s actually sent
    duration: float
    answers: Counter[str] = field(default_factory=Counter)
    missing_retry_after: int = 0
    max_depth: int = 0
    baseline_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    unsent: int = 0  # requests the client could not send in time (all connections busy)
    drained_after: float = 0.0
    accepted: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0

    @property
    def failures(self) -> list[str]:
        found = [
            f"{n} answers {label}"
            for label, n in self.answers.items()
            if label.split()[0] not in {"200", "202", "429", "503"}
        ]
        if self.missing_retry_after:
            found.append(f"{self.missing_retry_after} 429/503 answers without Retry-After")
        if self.max_depth > MAX_DEPTH:
            found.append(f"queue depth reached {self.max_depth} > {MAX_DEPTH}")
        if self.completed != self.accepted:
            found.append(f"{self.accepted - self.completed} accepted clicks not completed")
        if self.peak_rss_mib > self.baseline_rss_mib + MEMORY_HEADROOM_MIB:
            found.append(
                f"api memory grew from {self.baseline_rss_mib:.0f} MiB to "
                f"{self.peak_rss_mib:.0f} MiB"
            )
        if self.max_depth < 0.9 * MAX_DEPTH:
            found.append(f"the queue never filled (max depth {self.max_depth})")
        if self.achieved < 2.0 * self.sustainable:
            found.append(f"offered only {self.achieved:.0f} clicks/s: not an overload")
        return found

    def summary(self) -> str:
        histogram = ", ".join(f"{label}: {n}" for label, n in sorted(self.answers.items()))
        return "\n".join(
            [
                f"overload: {self.duration:.0f} s at {self.achieved:.0f} clicks/s offered"
                f" ({self.achieved / self.sustainable:.1f}x the sustainable"
                f" {self.sustainable:.0f} clicks/s), {CLICKS} clicks per request,"
                f" {USERS} users",
                f"  answers        : {histogram}",
                f"  Retry-After    : missing on {self.missing_retry_after} 429/503 answers",
                f"  queue depth    : max {self.max_depth} (MINING_QUEUE_MAX_DEPTH {MAX_DEPTH})",
                f"  api memory     : RSS of master + 2 workers {self.baseline_rss_mib:.0f} MiB"
                f" before, peak {self.peak_rss_mib:.0f} MiB",
                f"  latency        : p99 {self.p99_ms():.0f} ms; {self.unsent} requests not"
                f" sent (client connections all busy)",
                f"  after the load : drained in {self.drained_after:.1f} s;"
                f" {self.completed}/{self.accepted} accepted clicks completed",
                f"  verdict        : {'PASS' if not self.failures else 'FAIL'}",
            ]
        )


def overload_stack(folder: Path) -> Stack:
    return Stack(
        folder,
        api_env={
            "TRUSTED_PROXY_COUNT": "1",
            "MINING_QUEUE_MAX_DEPTH": str(MAX_DEPTH),
            # One job per request: the worker, not the api, is the bottleneck.
            "MINING_BATCH_MAX_CLICKS": str(CLICKS),
            "MINING_JOB_MAX_CLICKS": str(CLICKS),
        },
        worker_env={"MINING_WORKER_CONCURRENCY": "1"},
        worker_pods=1,
        web_concurrency=2,
    )


class Client:
    """Open-loop clicks at a fixed rate whatever the answers, fresh keys, many connections."""

    def __init__(self, stack: Stack, rng: random.Random, connections: int = 128) -> None:
        self.stack = stack
        self.rng = rng
        self.connections = [Connection("127.0.0.1", stack.api.port) for _ in range(connections)]
        self.users = [
            (str(n), stack.token(str(n)), f"198.19.{n // 250}.{n % 250 + 1}")
            for n in range(1, USERS + 1)
        ]
        self.body = orjson.dumps({"clicks": CLICKS})
        self.answers: Counter[str] = Counter()
        self.accepted: list[tuple[str, str]] = []
        self.missing_retry_after = 0
        self.latencies: list[float] = []
        self.sent = 0
        self.unsent = 0
        self._keys = 0

    def reset(self) -> None:
        self.answers.clear()
        self.latencies.clear()
        self.missing_retry_after = 0
        self.sent = 0
        self.unsent = 0

    def _request(self) -> tuple[str, str, bytes]:
        user, token, ip = self.rng.choice(self.users)
        self._keys += 1
        key = f"o{self._keys}"
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Forwarded-For": ip,
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        }
        return user, key, post("/api/mining/click", headers, self.body)

    async def _connection(self, connection: Connection, work: asyncio.Queue[float]) -> None:
        while True:
            await work.get()
            user, key, raw = self._request()
            started = time.monotonic()
            try:
                answer = await asyncio.wait_for(connection.request(raw), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                self.answers[f"no answer ({type(error).__name__})"] += 1
                continue
            finally:
                work.task_done()
            self.latencies.append(time.monotonic() - started)
            label = str(answer.status)
            if answer.status >= 400:
                label += " " + str(orjson.loads(answer.body).get("error"))
            self.answers[label] += 1
            if answer.status in (429, 503) and "retry-after" not in answer.headers:
                self.missing_retry_after += 1
            if answer.status in (200, 202):
                self.accepted.append((user, key))

    async def send(self, requests_per_second: float, seconds: float) -> float:
        """Send for ``seconds``; return the requests per second actually sent."""
        work: asyncio.Queue[float] = asyncio.Queue()
        workers = [asyncio.create_task(self._connection(c, work)) for c in self.connections]
        started = time.monotonic()
        scheduled = 0
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                while scheduled < elapsed * requests_per_second:
                    scheduled += 1
                    # What the connections cannot take is not piled up without end.
                    if work.qsize() < len(self.connections):
                        work.put_nowait(elapsed)
                        self.sent += 1
                    else:
                        self.unsent += 1
                await asyncio.sleep(0.002)
            rate = self.sent / (time.monotonic() - started)
            await work.join()
            return rate
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def pause(stack: Stack, sig: int) -> None:
    for pod in stack.workers:
        os.killpg(pod.pid, sig)


async def calibrate(stack: Stack, client: Client) -> float:
    """Clicks per second one worker pod applies from a full backlog."""
    pause(stack, signal.SIGSTOP)
    try:
        await client.send(100, (MAX_DEPTH * 0.8 / CLICKS) / 100)
    finally:
        pause(stack, signal.SIGCONT)
    redis = stack.redis_client()
    try:
        start_depth = int(redis.get(Keys.queue_depth) or 0)
        started = time.monotonic()
        while True:
            depth = int(redis.get(Keys.queue_depth) or 0)
            if depth <= start_depth * 0.1:
                return (start_depth - depth) / (time.monotonic() - started)
            await asyncio.sleep(0.05)
    finally:
        redis.close()


async def sample(stack: Stack, report: OverloadReport, stop: asyncio.Event) -> None:
    redis = stack.redis_client()
    try:
        while not stop.is_set():
            report.max_depth = max(report.max_depth, int(redis.get(Keys.queue_depth) or 0))
            report.peak_rss_mib = max(report.peak_rss_mib, stack.api.rss_kib() / 1024)
            await asyncio.sleep(0.05)
    finally:
        redis.close()


async def run_overload(folder: Path, duration: float, factor: float = 3.0) -> OverloadReport:
    stack = overload_stack(folder)
    await asyncio.to_thread(stack.start)
    client = Client(stack, random.Random(3))
    try:
        sustainable = await calibrate(stack, client)
        await asyncio.to_thread(wait_drained, stack, 120)
        report = OverloadReport(sustainable, factor * sustainable, 0.0, duration)
        report.baseline_rss_mib = stack.api.rss_kib() / 1024
        client.reset()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stack, report, stop))
        rate = await client.send(factor * sustainable / CLICKS, duration)
        stop.set()
        await sampler
        report.achieved = rate * CLICKS
        report.answers = client.answers
        report.latencies = client.latencies
        report.missing_retry_after = client.missing_retry_after
        report.unsent = client.unsent
        report.drained_after = await asyncio.to_thread(wait_drained, stack, 180)
        report.accepted = len(client.accepted)
        report.completed = await asyncio.to_thread(completed_records, stack, client.accepted)
        return report
    finally:
        client.close()
        await asyncio.to_thread(stack.stop)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.overload", description=__doc__)
    parser.add_argument("--duration", type=float, default=30, help="seconds of overload")
    parser.add_argument("--factor", type=float, default=3.0, help="times the sustainable rate")
    args = parser.parse_args()
    folder = new_run("overload")
    print(f"overload: logs in {folder}", flush=True)
    report = asyncio.run(run_overload(folder, args.duration, args.factor))
    print(report.summary())
    for failure in report.failures:
        print(f"  FAIL: {failure}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
