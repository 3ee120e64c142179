"""Every dashboard query returns data from a real Prometheus scraping the running stack: api,
worker, id-allocator (real processes on real Redis and MongoDB) and the operator (on a real API
server), labelled as the chart's ServiceMonitors label them and with the chart's recording rules,
with clicks, replays, throttled clicks, sign-ups, a poison job and id requests flowing. The
dashboard variables are filled in as Grafana fills them in. Queries of kube-state-metrics and
cAdvisor series (replicas, pod resources) must run; no such exporter runs here."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.names import APPLY_CLICKS_JOB, QUEUE_NAME
from crypto_mine.common.settings import Env
from devstack.servers import serving
from tests.support.allocator import TOKEN as ALLOCATOR_TOKEN

from .exported import metric_names
from .livestack import LiveStack, Prometheus, chart_rules
from .queries import CLUSTER_METRICS, dashboard_queries, resolved

DEADLINE = 120.0
RELEASE = "crypto-mine"  # its full name too: the jobs are crypto-mine-api, ...


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path) -> Iterator[LiveStack]:
    live = LiveStack(tmp_path_factory.mktemp("live"), kubeconfig)
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture(scope="module")
def prometheus(stack: LiveStack) -> Iterator[Prometheus]:
    folder = stack.folder / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    rules = folder / "rules.yaml"
    rules.write_text(chart_rules(RELEASE, stack.namespace))
    labels = {"namespace": stack.namespace}
    yield from serving(Prometheus(folder, stack.scrape_jobs(RELEASE), labels, rules))


class Traffic:
    """Clicks through the api as a client would, and id requests to the allocator."""

    def __init__(self, stack: LiveStack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=5)
        settings = ApiSettings.from_env(Env(stack.env))
        self.tokens = {u: issue_token(settings, u) for u in ("ana", "bo", "cy", "greedy")}

    def click(self, user: str, key: str) -> int:
        answer = self.client.post(
            self.stack.url("api", "/api/mining/click"),
            headers={"Authorization": f"Bearer {self.tokens[user]}", "Idempotency-Key": key},
            json={"clicks": 1},
        )
        return answer.status_code

    def round(self) -> set[int]:
        statuses: set[int] = set()
        for user in ("ana", "bo", "cy"):
            key = secrets.token_hex(6)
            statuses.add(self.click(user, key))
            statuses.add(self.click(user, key))  # a replay
            self.client.get(
                self.stack.url("api", "/api/mining/status"),
                headers={"Authorization": f"Bearer {self.tokens[user]}"},
            )
        statuses |= {self.click("greedy", secrets.token_hex(6)) for _ in range(12)}
        signup = self.client.post(
            self.stack.url("api", "/api/auth/register"),
            json={"username": f"user-{secrets.token_hex(4)}", "password": "correct horse"},
        )
        assert signup.status_code in {201, 429}, signup.text
        ids = self.client.post(
            self.stack.url("id-allocator", "/v1/ids?count=3"),
            headers={"Authorization": f"Bearer {ALLOCATOR_TOKEN}"},
        )
        assert ids.status_code == 200, ids.text
        return statuses

    def poison(self) -> None:
        connection = redis.Redis.from_url(self.stack.redis_url)
        Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer).enqueue(
            APPLY_CLICKS_JOB, "not a list of clicks"
        )
        connection.close()

    def close(self) -> None:
        self.client.close()


def test_every_dashboard_query_returns_data(stack: LiveStack, prometheus: Prometheus) -> None:
    traffic = Traffic(stack)
    traffic.poison()
    filled = [
        (where, resolved(expr, stack.namespace, RELEASE, rate_interval="20s", period="10m"))
        for where, expr in dashboard_queries()
    ]
    cluster = [(where, expr) for where, expr in filled if metric_names(expr) & CLUSTER_METRICS]
    for where, expr in cluster:
        assert prometheus.query(expr) == [], where  # runs; no kube-state-metrics or kubelet here
    queries = [(where, expr) for where, expr in filled if (where, expr) not in cluster]
    seen_statuses: set[int] = set()
    empty = [where for where, _ in queries]
    deadline = time.monotonic() + DEADLINE
    try:
        while empty and time.monotonic() < deadline:
            seen_statuses |= traffic.round()
            empty = [where for where, expr in queries if not prometheus.query(expr)]
            time.sleep(1)
    finally:
        traffic.close()
    assert {202, 200, 429} <= seen_statuses
    assert empty == [], f"no data after {DEADLINE:.0f}s for: {empty}"
    assert len(queries) > 35
    assert len(cluster) == 4


def test_scrape_targets_carry_the_chart_job_names(stack: LiveStack, prometheus: Prometheus) -> None:
    up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("up")}
    assert up == {job: "1" for job in stack.scrape_jobs(RELEASE)}
