"""The operator against a real API server, as its own ServiceAccount, fed by Redis or Prometheus."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
import redis

from crypto_mine.common.names import Keys, Metrics
from devstack.servers import RedisServer, free_port

from .conftest import RunningOperator, queue_autoscaler, worker_deployment
from .kube import Cluster, KubectlError, eventually
from .prometheus import PrometheusServer, QueueDepthExporter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

POLL = 2  # pollIntervalSeconds
DOWN_WINDOW = 6  # scaleDown.stabilizationWindowSeconds
PER_REPLICA = 100  # targetDepthPerReplica
# What a busy 2-core machine may add to a poll (API calls, a Prometheus scrape, scheduling): the
# deadlines stay far below what a missed scale or a wrong stabilization window would take.
SLACK = 5.0
# The one Deployment name operator/rbac.yaml lets the operator scale.
TARGET = "crypto-mine-worker"


def scaling_spec(metric: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The spec of a QueueAutoscaler of TARGET reading ``metric``; ``fields`` replace its own."""
    return {
        "scaleTargetRef": {"kind": "Deployment", "name": TARGET},
        "minReplicas": 1,
        "maxReplicas": 6,
        "metric": metric,
        "targetDepthPerReplica": PER_REPLICA,
        "pollIntervalSeconds": POLL,
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPods": 10},
            "scaleDown": {"stabilizationWindowSeconds": DOWN_WINDOW, "maxStepPods": 10},
        },
        **fields,
    }


def apply_scaled_worker(
    cluster: Cluster, namespace: str, replicas: int, spec: dict[str, Any]
) -> None:
    """TARGET with ``replicas`` pods and the QueueAutoscaler "worker" of ``spec``."""
    cluster.apply(
        worker_deployment(TARGET, replicas), queue_autoscaler("worker", spec), namespace=namespace
    )


def replicas(apps: kubernetes.client.AppsV1Api, namespace: str, name: str = TARGET) -> int:
    scale = apps.read_namespaced_deployment_scale(name, namespace)
    assert scale.spec is not None
    return int(scale.spec.replicas or 0)


def condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    status = cluster.get("queueautoscaler", name, namespace).get("status") or {}
    found: list[dict[str, Any]] = [c for c in status.get("conditions", []) if c["type"] == kind]
    return found[0] if found else None


def condition_false(
    cluster: Cluster, namespace: str, name: str, kind: str, reason: str, timeout: float = 10
) -> dict[str, Any]:
    """The condition ``kind`` of QueueAutoscaler ``name`` once written: False, for ``reason``."""
    found = eventually(lambda: condition(cluster, namespace, name, kind), timeout, reason)
    assert (found["status"], found["reason"]) == ("False", reason)
    return found


def wait_reading(cluster: Cluster, namespace: str) -> None:
    """Until the QueueAutoscaler "worker" has read its metric (ScalingActive=True)."""
    eventually(
        lambda: (
            (c := condition(cluster, namespace, "worker", "ScalingActive"))
            and c["status"] == "True"
        ),
        3 * POLL + SLACK,
        "the operator reading the metric",
    )


def scale_up_and_back_down(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    operator: RunningOperator,
    set_depth: Callable[[float], None],
) -> None:
    """Depth 450 -> 5 replicas within two polls; depth 0 -> back to 1, but only after the window."""
    wait_reading(cluster, namespace)
    assert replicas(apps, namespace) == 1

    set_depth(450)
    raised = time.monotonic()
    eventually(lambda: replicas(apps, namespace) == 5, 2 * POLL + SLACK, "scale up to 5")
    assert time.monotonic() - raised <= 2 * POLL + SLACK

    def status_written() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get("queueautoscaler", "worker", namespace)["status"]
        return status if status.get("desiredReplicas") == 5 else None

    status = eventually(status_written, 2 * POLL + SLACK, "status after scaling up")
    assert status["currentReplicas"] == 5
    assert status["lastMetricValue"] == 450
    assert status["lastScaleTime"]
    kinds = {c["type"]: c for c in status["conditions"]}
    assert kinds["AbleToScale"]["status"] == "True"
    assert kinds["ScalingActive"]["reason"] == "ValidMetricFound"
    assert kinds["ScalingLimited"]["status"] == "False"

    set_depth(0)
    lowered = time.monotonic()
    # The last high reading may be up to one poll old when the depth drops.
    hold_until = lowered + DOWN_WINDOW - POLL - 0.5
    while time.monotonic() < hold_until:
        assert replicas(apps, namespace) == 5, (
            f"scaled down {time.monotonic() - lowered:.1f}s after the drop, "
            f"inside the {DOWN_WINDOW}s window"
        )
        time.sleep(0.2)
    eventually(
        lambda: replicas(apps, namespace) == 1,
        DOWN_WINDOW + 2 * POLL + SLACK,
        "scale back down to minReplicas after the window",
    )

    def rescale_events() -> list[str] | None:
        messages = sorted(
            e["message"]
            for e in cluster.events(namespace)
            if e["reason"] == "SuccessfulRescale" and e["involvedObject"]["name"] == "worker"
        )
        return messages if len(messages) == 2 else None

    messages = eventually(rescale_events, 5, "two SuccessfulRescale events")
    assert messages[0].startswith("New size: 1; reason: queue depth 0")
    assert messages[1].startswith("New size: 5; reason: queue depth 450")

    exposition = operator.metrics()
    labels = f'name="worker",namespace="{namespace}"'
    assert f"crypto_mine_operator_desired_replicas{{{labels}}} 1.0" in exposition
    assert f'crypto_mine_operator_scale_total{{direction="up",{labels}}} 1.0' in exposition
    assert f'crypto_mine_operator_scale_total{{direction="down",{labels}}} 1.0' in exposition


def test_schema_applies_defaults_and_rejects_invalid_resources(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        queue_autoscaler("minimal", {"scaleTargetRef": {"name": "worker"}}), namespace=namespace
    )
    spec = cluster.get("queueautoscaler", "minimal", namespace)["spec"]
    assert spec["minReplicas"] == 1
    assert spec["maxReplicas"] == 20
    assert spec["metric"] == {
        "source": "prometheus",
        "query": "sum(mining_click_queue_depth)",
        "drainRateQuery": "sum(rate(mining_worker_processed_total[1m]))",
        "lagQuery": "max(mining_worker_lag_seconds)",
        "shard": 0,
    }
    assert spec["targetDepthPerReplica"] == 500
    assert spec["pollIntervalSeconds"] == 5
    assert (spec["activationThreshold"], spec["cooldownPeriodSeconds"]) == (0, 300)
    assert "fallback" not in spec
    assert "targetDrainSeconds" not in spec
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPods": 4},
        "scaleDown": {"stabilizationWindowSeconds": 300},
    }
    assert spec["paused"] is False
    assert spec["scaleTargetRef"]["kind"] == "Deployment"

    bad = {
        "scaleTargetRef": {"kind": "StatefulSet", "name": "worker"},
        "minReplicas": -1,
        "maxReplicas": 0,
        "metric": {"source": "bogus", "prometheusUrl": "not a url", "shard": -1},
        "pollIntervalSeconds": 0,
        "behavior": {"scaleDown": {"maxStepPods": 0}},
        "fallback": {"failureThreshold": 1},
    }
    with pytest.raises(KubectlError) as rejected:
        cluster.apply(queue_autoscaler("invalid", bad), namespace=namespace, validate=False)
    assert 'The QueueAutoscaler "invalid" is invalid' in rejected.value.stderr
    for field in (
        "spec.minReplicas",
        "spec.maxReplicas",
        "spec.metric.source",
        "spec.metric.prometheusUrl",
        "spec.metric.shard",
        "spec.scaleTargetRef.kind",
        "spec.pollIntervalSeconds",
        "spec.behavior.scaleDown.maxStepPods",
        "spec.fallback.replicas",
    ):
        assert field in rejected.value.stderr
    with pytest.raises(KubectlError, match=r"spec\.scaleTargetRef: Required value"):
        cluster.apply(
            queue_autoscaler("untargeted", {"minReplicas": 1}), namespace=namespace, validate=False
        )
    listed = cluster.kubectl("get", "queueautoscalers", "-n", namespace, "-o", "name").stdout
    assert listed.split() == ["queueautoscaler.autoscaling.crypto-mine.io/minimal"]


def test_scales_with_the_queue_depth_in_redis(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
    redis_server: RedisServer,
    redis_client: redis.Redis,
) -> None:
    # No URL in the spec: the operator's own REDIS_URL is used.
    operator = start_operator(REDIS_URL=redis_server.url)
    apply_scaled_worker(cluster, namespace, 1, scaling_spec({"source": "redis"}))

    def set_depth(depth: float) -> None:
        redis_client.set(Keys.queue_depth, int(depth))

    scale_up_and_back_down(cluster, apps, namespace, operator, set_depth)


def test_scales_with_the_queue_depth_in_prometheus(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
    prometheus: PrometheusServer,
    exporter: QueueDepthExporter,
) -> None:
    query = f"sum({Metrics.queue_depth})"
    exporter.set(0)
    eventually(lambda: prometheus.query(query) == 0, 30, "Prometheus scraping the exporter")
    operator = start_operator(METRIC_URL_ALLOWLIST=prometheus.url)
    metric = {"source": "prometheus", "prometheusUrl": prometheus.url, "query": query}
    apply_scaled_worker(cluster, namespace, 1, scaling_spec(metric))

    def set_depth(depth: float) -> None:
        exporter.set(depth)
        # The clock starts once Prometheus has the value: its scrape interval is not ours.
        eventually(lambda: prometheus.query(query) == depth, 10, f"Prometheus seeing {depth}")

    scale_up_and_back_down(cluster, apps, namespace, operator, set_depth)


def test_unreadable_metric_and_bad_specs_change_nothing(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
) -> None:
    dead = {"source": "prometheus", "prometheusUrl": f"http://127.0.0.1:{free_port()}"}
    start_operator(METRIC_URL_ALLOWLIST=dead["prometheusUrl"])
    cluster.apply(
        worker_deployment(TARGET, 3),
        worker_deployment("other", 3),
        queue_autoscaler("worker", scaling_spec(dead)),
        # Valid to the schema (it cannot compare two fields in v1.20), not to the operator.
        queue_autoscaler(
            "inverted",
            scaling_spec(
                {"source": "redis"},
                scaleTargetRef={"name": "other"},
                minReplicas=5,
                maxReplicas=2,
            ),
        ),
        queue_autoscaler("orphan", scaling_spec(dead, scaleTargetRef={"name": "missing"})),
        namespace=namespace,
    )
    failed = eventually(
        lambda: (
            (c := condition(cluster, namespace, "worker", "ScalingActive"))
            and c["status"] == "False"
            and c
        ),
        2 * POLL + SLACK,
        "ScalingActive=False for an unreachable Prometheus",
    )
    assert failed["reason"] == "FailedGetMetric"
    assert "Prometheus at http://127.0.0.1" in failed["message"]
    invalid = condition_false(cluster, namespace, "inverted", "ScalingActive", "InvalidSpec")
    assert "minReplicas (5) must not exceed spec.maxReplicas (2)" in invalid["message"]
    orphan = condition_false(cluster, namespace, "orphan", "AbleToScale", "FailedGetScale")
    assert "missing" in orphan["message"]

    time.sleep(2 * POLL)
    assert replicas(apps, namespace) == 3
    assert replicas(apps, namespace, "other") == 3
    reasons = {
        (e["involvedObject"]["name"], e["reason"], e["type"]) for e in cluster.events(namespace)
    }
    assert ("worker", "FailedGetMetric", "Warning") in reasons
    assert ("inverted", "InvalidSpec", "Warning") in reasons
    assert ("orphan", "FailedGetScale", "Warning") in reasons
    assert not any(reason == "SuccessfulRescale" for _, reason, _ in reasons)
    # One Event per failure, not one per poll.
    assert sum(1 for e in cluster.events(namespace) if e["reason"] == "FailedGetMetric") == 1


def test_metric_urls_outside_the_allow_list_and_other_targets_are_refused(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
) -> None:
    start_operator(SCALE_TARGETS=TARGET)
    elsewhere = {"source": "prometheus", "prometheusUrl": "http://169.254.169.254/latest"}
    cluster.apply(
        worker_deployment(TARGET, 2),
        worker_deployment("api", 2),
        queue_autoscaler("elsewhere", scaling_spec(elsewhere)),
        namespace=namespace,
    )
    refused = condition_false(
        cluster, namespace, "elsewhere", "ScalingActive", "MetricUrlNotAllowed"
    )
    assert "http://169.254.169.254/latest is not in" in refused["message"]
    # A second QueueAutoscaler of the same Deployment, and one of a Deployment not listed.
    cluster.apply(
        queue_autoscaler("second", scaling_spec({"source": "redis"})),
        queue_autoscaler("api", scaling_spec({"source": "redis"}, scaleTargetRef={"name": "api"})),
        namespace=namespace,
    )
    second = condition_false(cluster, namespace, "second", "AbleToScale", "AmbiguousTarget")
    assert (
        second["message"] == f"Deployment {TARGET} is scaled by QueueAutoscaler elsewhere already"
    )
    condition_false(cluster, namespace, "api", "AbleToScale", "TargetNotAllowed")
    time.sleep(2 * POLL)
    assert replicas(apps, namespace) == replicas(apps, namespace, "api") == 2
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in cluster.events(namespace)}
    assert ("elsewhere", "MetricUrlNotAllowed") in reasons
    assert ("second", "AmbiguousTarget") in reasons
    assert ("api", "TargetNotAllowed") in reasons


def test_paused_leaves_the_target_alone(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
    redis_server: RedisServer,
    redis_client: redis.Redis,
) -> None:
    start_operator(REDIS_URL=redis_server.url)
    redis_client.set(Keys.queue_depth, 450)
    apply_scaled_worker(cluster, namespace, 2, scaling_spec({"source": "redis"}, paused=True))
    condition_false(
        cluster, namespace, "worker", "ScalingActive", "ScalingDisabled", 2 * POLL + SLACK
    )
    time.sleep(POLL)
    assert replicas(apps, namespace) == 2
    assert not [e for e in cluster.events(namespace) if e["type"] == "Warning"], (
        "paused is no failure"
    )
    # Unpausing is an edit the running daemon picks up.
    cluster.kubectl(
        "patch", "queueautoscaler", "worker", "-n", namespace, "--type=merge",
        "-p", '{"spec":{"paused":false}}',
    )  # fmt: skip
    eventually(lambda: replicas(apps, namespace) == 5, 2 * POLL + SLACK, "scale up after unpausing")


def test_a_backlog_starts_the_first_worker_within_one_poll_and_a_quiet_queue_stops_it(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
    redis_server: RedisServer,
    redis_client: redis.Redis,
) -> None:
    start_operator(REDIS_URL=redis_server.url)
    spec = scaling_spec(
        {"source": "redis"}, minReplicas=0, activationThreshold=10, cooldownPeriodSeconds=6
    )
    apply_scaled_worker(cluster, namespace, 0, spec)
    redis_client.set(Keys.queue_depth, 10)  # at the threshold: not active
    wait_reading(cluster, namespace)
    time.sleep(POLL)
    assert replicas(apps, namespace) == 0
    redis_client.set(Keys.queue_depth, 11)
    woken = time.monotonic()
    eventually(lambda: replicas(apps, namespace) == 1, POLL + SLACK, "the first worker")
    assert time.monotonic() - woken <= POLL + SLACK
    redis_client.set(Keys.queue_depth, 0)
    quiet = time.monotonic()
    eventually(lambda: replicas(apps, namespace) == 0, 6 + 2 * POLL + SLACK, "back to zero")
    # Not before the cooldown (counted from the last reading over the threshold).
    assert time.monotonic() - quiet >= 6 - POLL
    message = max(
        (e for e in cluster.events(namespace) if e["reason"] == "SuccessfulRescale"),
        key=lambda e: e["lastTimestamp"] or "",
    )["message"]
    assert message.startswith("New size: 0; reason: queue depth 0")
    assert "inactive for the cooldown of 6s" in message


def test_fallback_replicas_once_the_metric_fails_in_a_row(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
) -> None:
    dead = {"source": "prometheus", "prometheusUrl": f"http://127.0.0.1:{free_port()}"}
    start_operator(METRIC_URL_ALLOWLIST=dead["prometheusUrl"], METRIC_TIMEOUT="0.5")
    spec = scaling_spec(dead, fallback={"failureThreshold": 2, "replicas": 4})
    apply_scaled_worker(cluster, namespace, 1, spec)
    eventually(lambda: replicas(apps, namespace) == 4, 4 * POLL + SLACK, "the fallback size")

    def fallback_condition() -> dict[str, Any] | None:
        found = condition(cluster, namespace, "worker", "ScalingActive")
        return found if found and "fallback" in found["message"] else None

    failing = eventually(fallback_condition, 2 * POLL + SLACK, "the condition naming the fallback")
    assert failing["reason"] == "FailedGetMetric"
    assert failing["message"].endswith("running the fallback of 4 replicas")
