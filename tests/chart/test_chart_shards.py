"""The chart with click shards: a worker Deployment, Service and QueueAutoscaler per shard, the
shards' Redis URLs from the Secret, and monitoring that shows every shard.

One shard renders what a chart that never sharded rendered; the shard count and the Redis of
each shard are values (README, "Sharding the click path").
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from devstack.generate import CHART

from .test_chart_render import by_kind, named, render

DEV = CHART / "ci" / "dev-values.yaml"
# Redis from an existing Secret (its redis-shard-urls key too), monitoring on.
PRODUCTION = CHART / "ci" / "production-values.yaml"
# The default scenario's Redis (secrets.redis.url) is shard 0.
URLS = "secrets.redis.shardUrls={redis://redis-master:6379/0,redis://b:6379/0,redis://c:6379/0}"


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def workers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"].startswith("worker")
    ]


def test_one_shard_is_one_worker_deployment_reading_no_shard_urls() -> None:
    docs = render()
    (worker,) = workers(docs)
    assert worker["metadata"]["name"] == "crypto-mine-worker"
    assert env(worker)["MINING_SHARD"] == "0"
    assert "REDIS_SHARD_URLS" not in env(worker)
    secret = named(docs, "Secret", "crypto-mine")
    assert "redis-shard-urls" not in secret["data"]


def test_three_shards_are_three_worker_deployments_each_on_its_queue() -> None:
    docs = render("--set", "shards=3", "--set", URLS)
    names = [w["metadata"]["name"] for w in workers(docs)]
    assert names == ["crypto-mine-worker", "crypto-mine-worker-1", "crypto-mine-worker-2"]
    for shard, worker in enumerate(workers(docs)):
        variables = env(worker)
        assert variables["MINING_SHARD"] == str(shard)
        assert variables["REDIS_SHARD_URLS"]["secretKeyRef"]["key"] == "redis-shard-urls"
        selector = worker["spec"]["selector"]["matchLabels"]
        others = [w for w in workers(docs) if w is not worker]
        for other in others:  # no Deployment's selector takes another's pods
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not all(labels.get(k) == v for k, v in selector.items())
    secret = named(docs, "Secret", "crypto-mine")
    urls = base64.b64decode(secret["data"]["redis-shard-urls"]).decode()
    assert urls == "redis://redis-master:6379/0,redis://b:6379/0,redis://c:6379/0"
    for kind in ("Service", "PodDisruptionBudget"):
        assert named(docs, kind, "-worker-2")
    operator = named(docs, "Deployment", "-operator")
    assert env(operator)["SCALE_TARGETS"] == (
        "crypto-mine-worker,crypto-mine-worker-1,crypto-mine-worker-2"
    )
    assert env(operator)["REDIS_SHARD_URLS"]["secretKeyRef"]["key"] == "redis-shard-urls"


def test_each_shard_has_an_autoscaler_on_its_own_queue() -> None:
    docs = render("--set", "shards=2", "--set", URLS.replace(",redis://c:6379/0", ""))
    scalers = by_kind(docs, "QueueAutoscaler")
    assert [s["spec"]["scaleTargetRef"]["name"] for s in scalers] == [
        "crypto-mine-worker",
        "crypto-mine-worker-1",
    ]
    second = scalers[1]["spec"]["metric"]
    assert second["shard"] == 1
    if second["source"] == "prometheus":
        assert second["query"] == 'sum(mining_click_queue_depth{queue="mining-clicks-1"})'
    assert second["lagQuery"] == 'max(mining_worker_lag_seconds{queue="mining-clicks-1"})'
    assert 'job="crypto-mine-worker-1"' in second["drainRateQuery"]


def test_the_rules_see_every_shards_workers_and_each_queue() -> None:
    docs = render("--set", "shards=2", values=PRODUCTION)
    monitor = named(docs, "ServiceMonitor", "-worker-1")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker-1"
    worker = named(docs, "Deployment", "-worker-1")
    reference = env(worker)["REDIS_SHARD_URLS"]["secretKeyRef"]
    assert reference == {"name": "crypto-mine-datastores", "key": "redis-shard-urls"}
    rules = {
        rule["alert"]: rule["expr"]
        for doc in by_kind(docs, "PrometheusRule")
        for group in doc["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert 'job=~"crypto-mine-worker|crypto-mine-worker-1"' in rules["MiningWorkerDown"]
    assert re.search(r"max by \(namespace, job, queue\)", rules["MiningWorkerLagHigh"])
    assert "crypto-mine-worker-1" in rules["MiningQueueBackpressure"]


def test_a_dev_install_runs_a_redis_per_shard() -> None:
    docs = render("--set", "shards=2", values=DEV)
    assert named(docs, "Deployment", "-redis-1")
    assert named(docs, "Service", "-redis-1")
    secret = named(docs, "Secret", "crypto-mine")
    urls = base64.b64decode(secret["data"]["redis-shard-urls"]).decode().split(",")
    assert urls == ["redis://crypto-mine-redis:6379/0", "redis://crypto-mine-redis-1:6379/0"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--set", "shards=2"), "secrets.redis.shardUrls must name the Redis of every shard"),
        (
            ("--set", "shards=2", "--set", "secrets.redis.url=redis://x:6379/0", "--set", URLS),
            "secrets.redis.shardUrls must name",
        ),
        (
            (
                "--set",
                "shards=2",
                "--set",
                "secrets.redis.url=redis://x:6379/0",
                "--set",
                "secrets.redis.shardUrls={redis://a:6379/0,redis://b:6379/0}",
            ),
            "secrets.redis.shardUrls must start with secrets.redis.url",
        ),
        (("--set", "shards=2", "--set", URLS, "--set", "autoscaling.mode=hpa"), "mode hpa"),
    ],
)
def test_shard_values_that_cannot_work_are_refused(extra: tuple[str, ...], message: str) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        render(*extra)
