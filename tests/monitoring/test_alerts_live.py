"""The chart's alerts fire for real faults and resolve after them: a real Prometheus scrapes the
stack as processes (api, worker, id-allocator on real Redis and MongoDB, and redis_exporter)
with the rules the chart renders for this release, windows and ``for`` shortened through the
chart's own values (``customRules``, ``rateWindow``, ``slo.burnRateAlerts``).

Faults: the workers killed, MongoDB stopped while clicks wait, the api flooded by one client,
the queue filled (workers frozen, a small ``api.queueMaxDepth``), Redis given an evicting
policy."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.settings import Env
from devstack.servers import Process, free_port, port_open, wait_until
from tests.support.debian import installed

from .livestack import LiveStack, Prometheus, alert_names, chart_rules

RELEASE = "live"
FULLNAME = "live-crypto-mine"
QUEUE_MAX_DEPTH = 60
DEADLINE = 120.0
# The chart's values that make the alerts quick enough to watch: every `for` 5 s, rate windows
# of 20 s, one burn-rate alert over 1 minute and 15 seconds.
QUICK = (
    'monitoring.prometheusRule.rateWindow="20s"',
    'monitoring.slo.burnRateAlerts=[{"severity": "critical", "longWindow": "1m", '
    '"shortWindow": "15s", "burnRate": 14.4, "for": "5s"}]',
    f"api.queueMaxDepth={QUEUE_MAX_DEPTH}",
)


def render_rules(namespace: str, folder: Path) -> Path:
    """The chart's rules for release ``live`` in ``namespace``, every alert's `for` 5 s."""
    # Fixed worker processes, nothing to scale them: no operator, autoscaling mode none.
    base = (
        "monitoring.redisExporter.enabled=true",
        "operator.enabled=false",
        'autoscaling.mode="none"',
        *QUICK,
    )
    names = alert_names(chart_rules(RELEASE, namespace, *base))
    quick = json.dumps({name: {"for": "5s"} for name in names})
    path = folder / "rules.yaml"
    path.write_text(
        chart_rules(RELEASE, namespace, *base, f"monitoring.prometheusRule.customRules={quick}")
    )
    return path


def redis_exporter() -> str:
    return installed("prometheus-redis-exporter")


class Traffic:
    """Clicks from ten users, about twenty a second, until stopped; answers counted."""

    def __init__(self, stack: LiveStack) -> None:
        self.stack = stack
        settings = ApiSettings.from_env(Env(stack.env))
        self.tokens = {f"u{i}": issue_token(settings, f"u{i}") for i in range(10)}
        self.flooder = issue_token(settings, "flooder")
        self.statuses: Counter[int] = Counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def click(self, client: httpx.Client, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(8)}
        try:
            answer = client.post(
                self.stack.url("api", "/api/mining/click"), headers=headers, json={"clicks": 1}
            )
        except httpx.HTTPError:
            return 0
        self.statuses[answer.status_code] += 1
        return answer.status_code

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                for token in self.tokens.values():
                    self.click(client, token)
                self.stopped.wait(0.5)

    def flood(self, seconds: float) -> Counter[int]:
        """One client clicking as fast as it can: its per-user bucket answers 429."""
        seen: Counter[int] = Counter()
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                seen[self.click(client, self.flooder)] += 1
        return seen

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    limits = {
        "MINING_QUEUE_MAX_DEPTH": str(QUEUE_MAX_DEPTH),
        "MINING_RATE_LIMIT_PER_IP": "100000",
        "MINING_RATE_LIMIT_IP_BURST": "100000",
        "MINING_ADMISSION_TIMEOUT": "1",
    }
    live = LiveStack(tmp_path_factory.mktemp("alerts"), with_operator=False, api_env=limits)
    try:
        live.start()
        exporter_port = free_port()
        exporter = Process(
            "redis-exporter",
            [redis_exporter(), "--redis.addr", live.redis_url,
             "--web.listen-address", f"127.0.0.1:{exporter_port}"],
            live.folder / "logs" / "redis-exporter.log",
        )  # fmt: skip
        live.ports["redis-exporter"] = exporter_port
        live._start(exporter, exporter_port)
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def prometheus(stack: LiveStack) -> Iterator[Prometheus]:
    jobs = stack.scrape_jobs(FULLNAME)
    jobs[f"{FULLNAME}-redis-exporter"] = (f"127.0.0.1:{stack.ports['redis-exporter']}", "/metrics")
    folder = stack.folder / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    rules = render_rules(stack.namespace, folder)
    server = Prometheus(folder, jobs, {"namespace": stack.namespace}, rules).start()
    try:
        wait_until(lambda: len(server.query("up == 1")) == len(jobs), DEADLINE, "every target up")
        # No alert of the stack's own before any fault (absent() ones settle after a scrape).
        wait_until(lambda: firing(server) == set(), DEADLINE, "no alert firing at rest")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traffic(stack: LiveStack, prometheus: Prometheus) -> Iterator[Traffic]:
    with Traffic(stack) as running:
        yield running


def firing(server: Prometheus) -> set[str]:
    return {a["labels"]["alertname"] for a in server.alerts() if a["state"] == "firing"}


def active(server: Prometheus) -> set[str]:
    return {a["labels"]["alertname"] for a in server.alerts()}


def fires_then_resolves(
    server: Prometheus, alerts: set[str], fault: Callable[[], object], heal: Callable[[], object]
) -> dict[str, float]:
    """Inject the fault, wait until every alert of ``alerts`` fires, heal it, wait until none
    is pending or firing; seconds each step took."""
    assert active(server) & alerts == set(), f"already active: {active(server) & alerts}"
    started = time.monotonic()
    fault()
    wait_until(lambda: alerts <= firing(server), DEADLINE, f"{sorted(alerts)} firing")
    fired = time.monotonic() - started
    healed_at = time.monotonic()
    heal()
    wait_until(lambda: not active(server) & alerts, DEADLINE, f"{sorted(alerts)} resolved")
    return {"fired": round(fired, 1), "resolved": round(time.monotonic() - healed_at, 1)}


def test_killed_workers_fire_worker_down(
    stack: LiveStack, prometheus: Prometheus, traffic: Traffic
) -> None:
    worker = stack.processes["worker"]
    timing = fires_then_resolves(
        prometheus,
        {"MiningWorkerDown"},
        worker.kill_group,
        lambda: stack._start(worker, stack.ports["worker"]),
    )
    print("workers killed:", timing)


def test_stopped_mongodb_fires_while_clicks_wait(
    stack: LiveStack, prometheus: Prometheus, traffic: Traffic
) -> None:
    before = traffic.statuses[202]
    timing = fires_then_resolves(
        prometheus, {"MiningMongoUnreachable"}, stack.mongo.stop, stack.mongo.start
    )
    assert traffic.statuses[202] > before, "clicks were not accepted while MongoDB was away"
    print("MongoDB stopped:", timing)


def test_flooding_client_fires_throttling_alert(
    stack: LiveStack, prometheus: Prometheus, traffic: Traffic
) -> None:
    seen: Counter[int] = Counter()

    def flood() -> None:
        def run() -> None:
            while "MiningApi429Spike" not in firing(prometheus) and sum(seen.values()) < 200_000:
                seen.update(traffic.flood(2))

        threading.Thread(target=run, daemon=True).start()

    timing = fires_then_resolves(prometheus, {"MiningApi429Spike"}, flood, lambda: None)
    assert seen[429] > seen[202]
    print("api flooded:", timing, dict(seen))


def test_full_queue_fires_backpressure_and_availability_burn(
    stack: LiveStack, prometheus: Prometheus, traffic: Traffic
) -> None:
    worker = stack.processes["worker"]
    frozen: list[int] = []

    def freeze() -> None:
        frozen.extend(worker.spawned_children())
        assert frozen, "no worker process to freeze"
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw() -> None:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    before = traffic.statuses[503]
    alerts = {"MiningQueueBackpressure", "MiningClickAvailabilityBudgetBurn"}
    try:
        timing = fires_then_resolves(prometheus, alerts, freeze, thaw)
    finally:
        thaw()
    assert traffic.statuses[503] > before, "a full queue answered no 503"
    print("queue filled:", timing)


def test_evicting_redis_policy_fires_exporter_alert(
    stack: LiveStack, prometheus: Prometheus
) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        timing = fires_then_resolves(
            prometheus,
            {"MiningRedisEvictionPolicy"},
            lambda: client.config_set("maxmemory-policy", "allkeys-lru"),
            lambda: client.config_set("maxmemory-policy", "noeviction"),
        )
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
    print("Redis evicting policy:", timing)


def test_rules_render_for_this_release(prometheus: Prometheus, stack: LiveStack) -> None:
    loaded: list[dict[str, Any]] = prometheus.rule_groups()
    queries = [rule["query"] for group in loaded for rule in group["rules"]]
    assert len(queries) > 40
    assert all(f'namespace="{stack.namespace}"' in query for query in queries if "{" in query)
    assert port_open(stack.ports["api"])
