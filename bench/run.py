"""One benchmark run: its own servers on free ports, every phase, the results as plain data.

Phases run in this order (each reported under its number): 1 and 2 (api and bare Starlette,
no worker), 4 with our api and worker pod, 6 on that same stack, 4 with the naive baseline,
3 (``tests/worker/bench_worker.py``, its own servers), 5 (``tests/allocator/bench_ids.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import httpx
import redis
from pymongo import MongoClient
from pymongo.database import Database
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.names import KEY_TAG, Keys
from crypto_mine.common.settings import Env
from crypto_mine.pipeline.queue_stats import QueueKeys
from devstack.servers import MongoServer, Process, RedisServer, wait_until
from tests.allocator import bench_ids
from tests.api.test_round_trips import Monitor
from tests.support.worker import WorkerProcess
from tests.worker import bench_worker

from . import memory, naive
from .cost import Snapshot, per_request
from .cpus import servers_apart
from .options import Options
from .probes import CpuMeter, RedisCounters, accepted_clicks, machine, metric
from .stack import (
    HttpServer,
    api_server,
    app_server,
    default_worker_concurrency,
    environment,
    naive_workers,
    worker_pod,
)
from .wrk import Wrk, WrkResult

log = logging.getLogger(__name__)

Document = dict[str, Any]
P = TypeVar("P", bound=Process)
SCRIPT_CALLS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


class Poller:
    """Samples a number in a thread every ``interval`` seconds: (monotonic time, value)."""

    def __init__(self, read: Callable[[], int], interval: float) -> None:
        self.read = read
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.read()))
            self._stop.wait(self.interval)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def first_time_at(self, value: int) -> float:
        """When the value first reached ``value`` (the last sample's time if it never did)."""
        return next((at for at, seen in self.samples if seen >= value), self.samples[-1][0])


def batches(pod: WorkerProcess) -> tuple[float, float, float]:
    """Jobs applied, their clicks and their seconds so far, from the worker pod's histograms."""
    text = pod.metrics()
    return (
        metric(text, "mining_worker_batch_clicks_count"),
        metric(text, "mining_worker_batch_clicks_sum"),
        metric(text, "mining_worker_batch_duration_seconds_sum"),
    )


def jobs_between(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> dict[str, float]:
    jobs, clicks, seconds = (b - a for a, b in zip(before, after, strict=True))
    return {
        "jobs": jobs,
        "clicks_per_job": round(clicks / jobs, 2) if jobs else 0.0,
        "seconds_per_job": round(seconds / jobs, 4) if jobs else 0.0,
    }


def applied(database: Database[Document]) -> int:
    """Clicks credited to balances (both systems ``$inc`` a ``clicks`` field per user)."""
    return sum(int(doc.get("clicks", 0)) for doc in database.balances.find({}, {"clicks": 1}))


class Run:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.work = options.out / "run"
        self.run_id = secrets.token_hex(4)
        self.started: list[Process] = []
        self.results: dict[str, Any] = {}
        self.api_max = 0.0
        self.began = time.monotonic()
        self.step, self.step_began = "", 0.0

    def say(self, text: str) -> None:
        """Progress on stderr; the time since the previous step goes into the results."""
        now = time.monotonic() - self.began
        steps = self.results.setdefault("step_seconds", {})
        if self.step:
            steps[self.step] = round(now - self.step_began, 1)
        self.step, self.step_began = text, now
        print(f"[{now:6.1f}s] {text}", file=sys.stderr, flush=True)

    # -- servers -------------------------------------------------------------------------

    def __enter__(self) -> Run:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.redis_server = self.start(RedisServer(self.work / "redis"))
        self.mongo_server = self.start(MongoServer(self.work / "mongo"))
        self.redis = redis.Redis.from_url(self.redis_server.url)
        self.mongo: MongoClient[Document] = MongoClient(self.mongo_server.uri)
        tokens = self.work / "tokens.txt"
        settings = ApiSettings.from_env(Env(self.env("bench")))
        tokens.write_text(
            "\n".join(issue_token(settings, f"bench-{n}") for n in range(self.o.users)) + "\n"
        )
        self.wrk = Wrk(self.work / "wrk", tokens, self.o.threads, self.o.connections)
        return self

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()
        self.redis.close()
        self.mongo.close()

    def start(self, process: P) -> P:
        self.started.append(process)
        process.start()
        return process

    def stop(self, *processes: Process) -> None:
        for process in processes:
            process.stop()
            self.started.remove(process)

    def env(self, database: str) -> dict[str, str]:
        return environment(
            self.redis_server.url,
            self.mongo_server.uri,
            database,
            WEB_CONCURRENCY=str(self.o.web_workers),
        )

    def key(self, label: str) -> str:
        return f"{self.run_id}-{label}"

    def groups(self, servers: dict[str, Process], mongodb: bool = True) -> dict[str, int]:
        """Process groups to meter: the given servers, Redis and (unless told) MongoDB."""
        groups = {name.replace("_", " "): server.pid for name, server in servers.items()}
        groups["redis"] = self.redis_server.pid
        if mongodb:
            groups["mongodb"] = self.mongo_server.pid
        return groups

    # -- the phases ----------------------------------------------------------------------

    def all(self) -> dict[str, Any]:
        self.results["machine"] = machine()
        self.say("phases 1-2: bare Starlette and the click endpoint, Redis counters")
        api = self.http()
        self.redis.flushall()  # the clicks of phases 1 and 2 were never meant to be applied
        self.say("phase 4: end to end, our api and worker pod")
        pod = self.start(worker_pod(self.work / "pod", *self.stores("bench_e2e_ours")))
        self.wait_workers(QueueKeys.workers, default_worker_concurrency())
        self.results["4_e2e"] = {"ours": self.ours(api, pod)}
        self.say("phase 7: Redis bytes per click, the keys phase 4 left")
        self.results["7_memory"] = memory.measure(self.redis)
        self.say("phase 6: latency at a fraction of the maximum, worker pod running")
        self.results["6_latency"] = self.latency(api, pod)
        self.say("phase 8: the cost of a click, a click-status read and a balance read")
        self.results["8_cost"] = {
            "click": self.results["4_e2e"]["ours"]["cost"],
            **self.reads(api, pod),
        }
        self.stop(pod, api)
        self.say("phase 4: end to end, the naive baseline")
        self.results["4_e2e"]["naive"] = self.naive()
        self.say("phase 3: one worker process vs raw insert_many")
        self.results["3_worker"] = self.worker()
        self.say("phase 5: ids")
        self.results["5_ids"] = self.ids()
        self.say("phase 9: the click endpoint on one click shard and on two")
        self.results["9_shards"] = self.shards()
        self.say("done")
        self.results["machine"]["load_average_after"] = machine()["load_average"]
        self.results["elapsed_seconds"] = round(time.monotonic() - self.began, 1)
        return self.results

    def stores(self, database: str) -> tuple[str, str, str]:
        return self.redis_server.url, self.mongo_server.uri, database

    def http(self) -> HttpServer:
        """Phases 1 and 2: bare Starlette and the click endpoint, alternating; no worker runs."""
        env = self.env("bench_api")
        bare, api = app_server("bare", "bench.bare:app", self.work, env), api_server(self.work, env)
        for server in (bare, api):
            self.started.append(server.launch())
        bare.wait_ready()
        api.wait_ready()
        servers = {"bare": bare, "api": api}
        groups = [bare.pid, api.pid]
        with servers_apart(groups, [self.redis_server.pid], self.o.web_workers) as placement:
            for name, server in servers.items():
                self.wrk.timed(server.url, self.o.warmup, self.key(f"warm-{name}"))
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "api": []}
            total = RedisCounters()
            accepted_total = 0
            for repeat in range(self.o.repeats):
                for name, server in servers.items():
                    self.redis.flushall()
                    counters = RedisCounters.read(self.redis)
                    accepted = accepted_clicks(api.url)
                    # MongoDB too: the api looks each admission call's keys up there.
                    meter = CpuMeter(self.groups({name: server}))
                    meter.start()
                    result = self.wrk.timed(
                        server.url, self.o.seconds, self.key(f"{name}-{repeat}")
                    )
                    if result.failed > result.requests / 100:
                        raise RuntimeError(
                            f"{name}: {result.errors} of {result.requests}; see logs"
                        )
                    run = {
                        **result.to_json(),
                        "ok_per_second": round(ok_rate(result), 1),
                        "cpu_percent": {**meter.stop(), "wrk": result.cpu_percent},
                    }
                    if name == "api":
                        run["accepted_at_server"] = self.settled(api) - accepted
                        delta = RedisCounters.read(self.redis) - counters
                        run["redis_calls"] = dict(delta.calls)
                        total = total + delta
                        accepted_total += run["accepted_at_server"]
                    runs[name].append(run)
        self.stop(bare)
        rates = {name: [run["ok_per_second"] for run in runs[name]] for name in runs}
        self.api_max = statistics.median(rates["api"])
        self.results["1_http"] = {
            "bare_requests_per_second": statistics.median(rates["bare"]),
            "api_accepted_per_second": self.api_max,
            "ratio": round(self.api_max / statistics.median(rates["bare"]), 3),
            "paired_ratios": [
                round(a / b, 3) for a, b in zip(rates["api"], rates["bare"], strict=True)
            ],
            "worker_running": False,
            "cpus": placement,
            "runs": runs,
        }
        self.results["2_redis"] = self.redis_cost(api, total, accepted_total)
        return api

    def shards(self) -> dict[str, Any]:
        """Phase 9: the api on one shard and on two (a Redis server each), alternating, side by
        side; no worker runs. What each Redis server carries, and what the api then takes."""
        second = self.start(RedisServer(self.work / "redis-1"))
        servers = [self.redis_server, second]
        clients = [self.redis, redis.Redis.from_url(second.url)]
        env = self.env("bench_shards")
        both = {**env, "REDIS_SHARD_URLS": f"{self.redis_server.url},{second.url}"}
        apis = {
            1: api_server(self.work / "one-shard", env),
            2: api_server(self.work / "two-shards", both),
        }
        for folder in ("one-shard", "two-shards"):
            (self.work / folder).mkdir(exist_ok=True)
        for api in apis.values():
            self.started.append(api.launch())
        for api in apis.values():
            api.wait_ready()
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        try:
            for count, api in apis.items():
                self.wrk.timed(api.url, self.o.warmup, self.key(f"warm-shards-{count}"))
            for repeat in range(self.o.repeats):
                for count, api in apis.items():
                    for client in clients:
                        client.flushall()
                    groups = {"api": api.pid} | {
                        f"redis {n}": server.pid for n, server in enumerate(servers)
                    }
                    meter = CpuMeter(groups)
                    before = [RedisCounters.read(client) for client in clients]
                    meter.start()
                    result = self.wrk.timed(
                        api.url, self.o.seconds, self.key(f"shards-{count}-{repeat}")
                    )
                    cpu = meter.stop()
                    after = [RedisCounters.read(client) for client in clients]
                    commands = [
                        sum((later - earlier).calls.values())
                        for earlier, later in zip(before, after, strict=True)
                    ]
                    runs[count].append(
                        {
                            **result.to_json(),
                            "ok_per_second": round(ok_rate(result), 1),
                            "cpu_percent": {**cpu, "wrk": result.cpu_percent},
                            "redis_commands": commands,
                        }
                    )
        finally:
            self.stop(*apis.values(), second)
            clients[1].close()
        rates = {
            count: statistics.median(r["ok_per_second"] for r in runs[count]) for count in runs
        }
        return {
            "one_shard_per_second": rates[1],
            "two_shards_per_second": rates[2],
            "ratio": round(rates[2] / rates[1], 3) if rates[1] else 0.0,
            "paired_ratios": [
                round(b["ok_per_second"] / a["ok_per_second"], 3)
                for a, b in zip(runs[1], runs[2], strict=True)
                if a["ok_per_second"]
            ],
            "runs": {str(count): found for count, found in runs.items()},
        }

    def redis_cost(self, api: HttpServer, full: RedisCounters, accepted: int) -> dict[str, Any]:
        """Phase 2: commands and round trips per accepted click, counted at the Redis server."""
        before, accepted_before = RedisCounters.read(self.redis), accepted_clicks(api.url)
        with Monitor(self.redis_server.url) as monitor:
            self.wrk.timed(api.url, self.o.monitor_seconds, self.key("monitor"))
            sample_accepted = self.settled(api) - accepted_before
        complete = not monitor.thread.is_alive()
        sample = RedisCounters.read(self.redis) - before
        top = Counter(command.lower() for command in monitor.commands)
        by_base: Counter[str] = Counter()
        for name, calls in sample.calls.items():
            by_base[name.split("|")[0]] += calls

        def share(name: str) -> float:
            """Of the calls of a command, the share sent by clients (not from Lua)."""
            base = name.split("|", maxsplit=1)[0]
            return min(1.0, top[base] / by_base[base]) if by_base[base] else 1.0

        def cost(counters: RedisCounters, clicks: int) -> dict[str, Any]:
            clicks = max(clicks, 1)
            scripts = sum(counters.calls[name] for name in SCRIPT_CALLS)
            top_level = sum(calls * share(name) for name, calls in counters.calls.items())
            return {
                "accepted_clicks": clicks,
                "round_trips_per_click": round(top_level / clicks, 4),
                "commands_per_click": round(sum(counters.calls.values()) / clicks, 3),
                "clicks_per_script_call": round(clicks / scripts, 2) if scripts else 0.0,
                "read_events_per_click": round(counters.reads / clicks, 4),
                "calls_per_click": {
                    name: round(calls / clicks, 4) for name, calls in counters.calls.most_common()
                },
            }

        sequential_before = RedisCounters.read(self.redis)
        sequential_accepted = accepted_clicks(api.url)
        self.wrk.timed(api.url, self.o.sequential_seconds, self.key("sequential"), connections=1)
        sequential_clicks = self.settled(api) - sequential_accepted
        sequential = RedisCounters.read(self.redis) - sequential_before
        return {
            "full_load": cost(full, accepted),
            "one_connection": cost(sequential, sequential_clicks),
            "monitor_sample": {
                **cost(sample, sample_accepted),
                "round_trips_per_click": round(len(monitor.commands) / max(sample_accepted, 1), 4),
                "top_level_commands": dict(top),
                "complete": complete,
            },
        }

    def settled(self, api: HttpServer) -> int:
        """The api's 202 count once the requests still in flight when wrk stopped are done."""
        last = accepted_clicks(api.url)
        while True:
            time.sleep(0.1)
            now = accepted_clicks(api.url)
            if now == last:
                return now
            last = now

    def wait_workers(self, key: str, count: int) -> None:
        wait_until(lambda: int(self.redis.scard(key)) >= count, 60, f"{count} workers on {key}")

    def ours_drained(self) -> bool:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.queue_depth)
            pipe.llen(QueueKeys.queue)
            pipe.zcard(QueueKeys.started)
            depth, waiting, started = pipe.execute()
        return int(depth or 0) == 0 and waiting == 0 and started == 0

    def ours(self, api: HttpServer, pod: WorkerProcess) -> dict[str, Any]:
        database = self.mongo["bench_e2e_ours"]
        groups = self.groups({"api": api, "worker_pod": pod})
        return self.end_to_end("ours", api.url, database, self.ours_drained, groups, pod)

    def naive(self) -> dict[str, Any]:
        self.redis.flushall()
        env = self.env("bench_e2e_naive")
        app = self.start(app_server("naive", "bench.naive:app", self.work, env))
        count = self.o.naive_worker_count
        workers = [self.start(worker) for worker in naive_workers(self.work, env, count)]
        self.wait_workers(WORKERS_BY_QUEUE_KEY % naive.QUEUE, count)
        queue = Queue(naive.QUEUE, connection=self.redis)
        started = StartedJobRegistry(queue=queue)

        def drained() -> bool:
            return queue.count == 0 and started.count == 0

        groups = self.groups({"app": app, **{f"worker_{n}": w for n, w in enumerate(workers)}})
        try:
            result = self.end_to_end(
                "naive", app.url, self.mongo["bench_e2e_naive"], drained, groups
            )
        finally:
            self.stop(app, *workers)
        cpu = result["cpu_percent"]
        cpu["workers"] = round(sum(cpu.pop(f"worker {n}") for n in range(count)), 1)
        result["worker_processes"] = count
        return result

    def wait_quiet(
        self, read: Callable[[], int], drained: Callable[[], bool], timeout: float
    ) -> None:
        """Until the queue is empty and ``read()`` stopped changing."""
        last: list[int] = []

        def quiet() -> bool:
            if not drained():
                return False
            value = read()
            stable = bool(last) and last[-1] == value
            last.append(value)
            time.sleep(0.1)
            return stable

        wait_until(quiet, timeout, "the queue to drain")

    def end_to_end(
        self,
        label: str,
        url: str,
        database: Database[Document],
        drained: Callable[[], bool],
        groups: dict[str, int],
        pod: WorkerProcess | None = None,
    ) -> dict[str, Any]:
        """Phase 4: from the first request to the moment the last click is in MongoDB."""
        clicks = self.o.e2e_clicks
        budget = 60 + clicks / 5
        self.wrk.counted(url, self.o.e2e_warmup_clicks, self.key(f"{label}-warm"), budget)
        self.wait_quiet(lambda: applied(database), drained, budget)
        base, base_documents = applied(database), database.clicks.count_documents({})
        jobs_before = batches(pod) if pod else None
        cost_before = self.snapshot(groups, database, url, pod) if pod else None
        poller = Poller(lambda: applied(database) - base, 0.02)
        meter = CpuMeter(groups)
        meter.start()
        began = time.monotonic()
        poller.start()
        result = self.wrk.counted(url, clicks, self.key(label), budget)
        answered = time.monotonic() - began
        try:
            self.wait_quiet(lambda: applied(database), drained, budget)
        finally:
            poller.stop()
        cpu = meter.stop()
        total = applied(database) - base
        documents = database.clicks.count_documents({}) - base_documents
        seconds = poller.first_time_at(total) - began
        jobs = jobs_between(jobs_before, batches(pod)) if pod and jobs_before else None
        cost = None
        if pod and cost_before:
            cost = per_request(cost_before, self.snapshot(groups, database, url, pod), total)
        return {
            "clicks_sent": clicks,
            "clicks": total,
            "exact": total == documents == clicks,
            "clicks_documents": documents,
            "answered_2xx": result.ok,
            "seconds": round(seconds, 3),
            "answered_seconds": round(answered, 3),
            "clicks_per_second": round(total / seconds, 1),
            "cpu_percent": cpu,
            "worker_jobs": jobs,
            "cost": cost,
            "wrk": result.to_json(),
        }

    def snapshot(
        self, groups: dict[str, int], database: Database[Document], url: str, pod: WorkerProcess
    ) -> Snapshot:
        def api_metrics() -> str:
            return httpx.get(f"{url}/api/metrics", timeout=10).text

        return Snapshot.read(groups, self.redis, database, [api_metrics, pod.metrics])

    def reads(self, api: HttpServer, pod: WorkerProcess) -> dict[str, Any]:
        """Phase 8's reads: the click status of keys phase 6 left in Redis (within their
        window), then balances, each from wrk for ``read_seconds``; the cost of one answer in
        every component."""
        self.wait_quiet(lambda: 0, self.ours_drained, 120)
        settings = ApiSettings.from_env(Env(self.env("bench")))
        records = self.redis.scan_iter(match=f"{KEY_TAG}:click:*", count=1000)
        users: dict[str, str] = {}
        status: list[tuple[str, str]] = []
        for record in records:
            user, key = (unquote(part) for part in record.decode().split(":", 3)[2:])
            token = users.setdefault(user, issue_token(settings, user))
            status.append((f"/api/mining/click/status?key={quote(key, safe='')}", token))
            if len(status) >= 5_000:
                break
        balance = [("/api/mining/status", token) for token in users.values()]
        database = self.mongo["bench_e2e_ours"]
        groups = self.groups({"api": api, "worker_pod": pod})
        found = {}
        for name, requests in (("click_status", status), ("balance", balance)):
            before = self.snapshot(groups, database, api.url, pod)
            result = self.wrk.reads(api.url, self.o.read_seconds, requests)
            cost = per_request(before, self.snapshot(groups, database, api.url, pod), result.ok)
            found[name] = {
                **cost,
                "statuses": result.statuses,
                "distinct": len(requests),
                "per_second": round(result.ok / result.seconds, 1) if result.seconds else 0.0,
                "latency_ms": result.latency_ms,
            }
        return found

    def latency(self, api: HttpServer, pod: WorkerProcess) -> dict[str, Any]:
        """Phase 6: click latency at a fraction of phase 1's maximum, the worker pod running."""
        self.wait_quiet(lambda: 0, self.ours_drained, 120)
        rate = self.o.latency_fraction * self.api_max
        samples: list[dict[str, float]] = []
        stop = threading.Event()
        began = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                try:
                    text = pod.metrics()
                except Exception:  # noqa: S112 - a missed sample is only a missed sample
                    continue
                samples.append(
                    {
                        "at": round(time.monotonic() - began, 2),
                        "lag_seconds": metric(text, "mining_worker_lag_seconds"),
                        "depth": metric(text, "mining_click_queue_depth"),
                    }
                )
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        meter = CpuMeter(self.groups({"api": api, "worker_pod": pod}))
        jobs_before = batches(pod)
        meter.start()
        sampler.start()
        result = self.wrk.paced(api.url, self.o.latency_seconds, self.key("paced"), rate)
        cpu = meter.stop()
        ended = time.monotonic()
        self.wait_quiet(lambda: 0, self.ours_drained, 120)
        drain = time.monotonic() - ended
        jobs = jobs_between(jobs_before, batches(pod))
        stop.set()
        sampler.join(5)
        lags = [s["lag_seconds"] for s in samples] or [0.0]
        return {
            "target_per_second": round(rate, 1),
            "fraction_of_max": self.o.latency_fraction,
            "achieved_per_second": round(result.rate, 1),
            "latency_ms": result.latency_ms,
            "failed": result.failed,
            "worker_lag_seconds": {
                "max": max(lags),
                "mean": round(statistics.fmean(lags), 3),
                "samples": len(samples),
            },
            "queue_depth_max": max((s["depth"] for s in samples), default=0.0),
            "load_seconds": round(result.seconds, 2),
            "worker_jobs": jobs,
            "drain_seconds_after": round(drain, 2),
            "cpu_percent": cpu,
            "timeline": samples,
            "wrk": result.to_json(),
        }

    def worker(self) -> dict[str, Any]:
        """Phase 3: ``tests/worker/bench_worker.py`` as it is (its own Redis and MongoDB)."""
        environ = dict(os.environ)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return bench_worker.run(self.o.worker_clicks, self.o.worker_users, self.o.worker_batch)
        finally:
            os.environ.clear()
            os.environ.update(environ)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def ids(self) -> dict[str, Any]:
        """Phase 5: ``tests/allocator/bench_ids.py``'s rows, on this run's MongoDB."""
        folder = self.work / "ids"
        folder.mkdir(exist_ok=True)
        rows = asyncio.run(bench_ids.measure(self.mongo_server, folder, self.o.ids_seconds))
        return {"rows": [asdict(row) for row in rows]}


def ok_rate(result: WrkResult) -> float:
    """Answers below 400 per second (all 202 here: every key is new and limits are high)."""
    return (result.requests - result.errors["status"]) / result.seconds if result.seconds else 0.0
