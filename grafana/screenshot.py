"""``python -m grafana.screenshot``: the mining dashboard drawn from live data, for the docs.

    python -m grafana.screenshot                 a local stack (api, worker, id-allocator,
                                                 Redis, MongoDB) and a Prometheus scraping it,
                                                 ~10 minutes of clicks, then the last five
                                                 drawn into docs/monitoring/mining-dashboard.png
    python -m grafana.screenshot --prometheus URL --minutes 30
                                                 the same drawing from a Prometheus of yours

The run: 30 users clicking, each from an address of its own (behind one trusted proxy), and
one user clicking faster than its limit; five minutes of that (the dashboard's rates look
back five minutes), then the worker's processes frozen for a while (the queue grows, the lag
with it) and the drain. A poison job at the start and one at the drain put a failure reason
in the table. Everything runs on free loopback ports and stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from crypto_mine.common.names import APPLY_CLICKS_JOB, QUEUE_NAME

from .render import RELEASE, Prometheus, Renderer, render

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana" / "dashboards" / "mining.json"
OUT = ROOT / "docs" / "monitoring" / "mining-dashboard.png"
USERS = 30
CLICKS_PER_SECOND = 30
GREEDY_PER_SECOND = 7  # one user clicking faster than MINING_RATE_LIMIT_PER_USER: 429s
STEADY, FROZEN, DRAIN = 300.0, 75.0, 150.0  # seconds of each phase
SHOWN = 300.0  # seconds drawn: the end of the steady phase, the freeze and the drain
IN_FLIGHT = 64  # clicks waiting for their answer at most


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Clicks:
    """Clicks at a steady rate from many users, replays, one greedy user, balance reads."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens
        self.users = [user for user in tokens if user != "greedy"]
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=30,
            trust_env=False,
            limits=httpx.Limits(max_connections=IN_FLIGHT),
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.answers: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.skipped = 0

    def headers(self, user: str) -> dict[str, str]:
        number = sum(user.encode()) % 250  # an address per user, as behind a proxy
        return {
            "Authorization": f"Bearer {self.tokens[user]}",
            "X-Forwarded-For": f"198.18.0.{number + 1}",
        }

    async def click(self, user: str, key: str) -> None:
        headers = {**self.headers(user), "Idempotency-Key": key}
        try:
            answer = await self.client.post("/api/mining/click", headers=headers, json={})
            self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
            if answer.status_code == 202 and random.random() < 0.1:
                await self.click(user, key)  # a retry: 200 with the stored outcome
            if random.random() < 0.2:
                await self.client.get("/api/mining/status", headers=self.headers(user))
        except httpx.HTTPError as error:
            name = type(error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    def spawn(self, user: str) -> None:
        if len(self.tasks) >= IN_FLIGHT:  # a slow machine: skip rather than pile up requests
            self.skipped += 1
            return
        task = asyncio.create_task(self.click(user, secrets.token_hex(8)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, seconds: float) -> None:
        started = time.monotonic()
        sent = greedy = 0
        while (elapsed := time.monotonic() - started) < seconds:
            while sent < elapsed * CLICKS_PER_SECOND:
                self.spawn(random.choice(self.users))
                sent += 1
            while greedy < elapsed * GREEDY_PER_SECOND:
                self.spawn("greedy")
                greedy += 1
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


def poison(redis_url: str) -> None:
    """A job the worker cannot apply: it fails and lands in the dead letters, with its code."""
    connection = redis.Redis.from_url(redis_url)
    Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer).enqueue(
        APPLY_CLICKS_JOB, "not a list of clicks"
    )
    connection.close()


def freeze(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def drive(url: str, tokens: dict[str, str], workers: list[int], redis_url: str) -> None:
    """``workers``: the worker pod's processes that apply jobs (its supervisor, which serves
    the metrics, keeps running, as it would while a pod's workers are stuck)."""
    clicks = Clicks(url, tokens)
    try:
        progress(f"steady clicks for {STEADY:.0f} s, a poison job")
        poison(redis_url)
        await clicks.run(STEADY)
        progress(f"the worker processes frozen (SIGSTOP) for {FROZEN:.0f} s: the queue grows")
        freeze(workers, signal.SIGSTOP)
        try:
            await clicks.run(FROZEN)
        finally:
            freeze(workers, signal.SIGCONT)
        progress(f"the workers back, another poison job, {DRAIN:.0f} s of clicks while they drain")
        poison(redis_url)
        await clicks.run(DRAIN)
    finally:
        await clicks.close()
        answers = dict(sorted(clicks.answers.items()))
        progress(f"click answers {answers}, errors {clicks.errors}, skipped {clicks.skipped}")


def live_run(out: Path) -> None:
    from tests.monitoring.livestack import Prometheus as PrometheusServer
    from tests.support.stack import Stack

    folder = Path(tempfile.mkdtemp(prefix="crypto-mine-screenshot-"))
    stack = Stack(folder, worker_pods=1, web_concurrency=1, redis_fsync="everysec")
    stack.api_env["TRUSTED_PROXY_COUNT"] = "1"
    progress(f"starting the stack under {folder}")
    stack.start()
    server = None
    try:
        [worker] = stack.workers
        # Named and labelled as the chart's ServiceMonitors name them for the release the
        # drawing shows (RELEASE: its name, its namespace).
        release = RELEASE["release"]
        jobs = {
            f"{release}-api": (f"127.0.0.1:{stack.api.port}", "/api/metrics"),
            f"{release}-worker": (f"127.0.0.1:{worker.metrics_port}", "/metrics"),
            f"{release}-id-allocator": (f"127.0.0.1:{stack.allocator.metrics_port}", "/metrics"),
        }
        labels = {"namespace": RELEASE["namespace"]}
        server = PrometheusServer(folder / "prometheus", jobs, labels).start()
        tokens = {user: stack.token(user) for user in [f"u{n}" for n in range(USERS)]}
        tokens["greedy"] = stack.token("greedy")
        asyncio.run(drive(stack.api.url, tokens, worker.spawned_children(), stack.redis.url))
        time.sleep(3)  # the last scrapes
        end = time.time()
        draw(f"http://127.0.0.1:{server.port}", end - SHOWN, end, out)
    finally:
        if server is not None:
            server.stop()
        stack.stop()


def draw(prometheus_url: str, start: float, end: float, out: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    step = max(5.0, round((end - start) / 120))
    render(dashboard, Renderer(Prometheus(prometheus_url), start, end, step), out)
    progress(f"wrote {out}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.screenshot", description=__doc__)
    parser.add_argument("--prometheus", help="draw from this Prometheus instead of a live run")
    parser.add_argument("--minutes", type=float, default=30.0, help="with --prometheus")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.prometheus:
        end = time.time()
        draw(args.prometheus.rstrip("/"), end - 60 * args.minutes, end, args.out)
    else:
        live_run(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
