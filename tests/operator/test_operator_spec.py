"""Reading a QueueAutoscaler spec: the CRD's defaults, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_mine.operator.decision import Fallback, StepRule
from crypto_mine.operator.spec import GROUP, KIND, PLURAL, VERSION, SpecError, parse_spec

CRD = Path(__file__).parents[2] / "charts/crypto-mine/crds/queueautoscalers.yaml"


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return loaded


def spec_schema() -> dict[str, Any]:
    version = crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_crd_names_match_the_operator() -> None:
    doc = crd()
    assert doc["spec"]["group"] == GROUP
    assert doc["spec"]["names"]["kind"] == KIND
    assert doc["spec"]["names"]["plural"] == PLURAL
    assert doc["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert [v["name"] for v in doc["spec"]["versions"]] == [VERSION]


def test_defaults_are_the_crds() -> None:
    props = spec_schema()["properties"]
    behavior = props["behavior"]["properties"]
    parsed = parse_spec({"scaleTargetRef": {"name": "crypto-mine-worker"}})
    assert parsed.min_replicas == props["minReplicas"]["default"] == 1
    assert parsed.max_replicas == props["maxReplicas"]["default"] == 20
    assert parsed.target_depth_per_replica == props["targetDepthPerReplica"]["default"] == 500
    assert parsed.poll_interval == props["pollIntervalSeconds"]["default"] == 5
    assert parsed.metric.source == props["metric"]["properties"]["source"]["default"]
    assert parsed.metric.query == props["metric"]["properties"]["query"]["default"]
    up = behavior["scaleUp"]["properties"]
    down = behavior["scaleDown"]["properties"]
    assert parsed.scale_up == StepRule(
        up["stabilizationWindowSeconds"]["default"], up["maxStepPods"]["default"]
    )
    assert parsed.scale_down == StepRule(down["stabilizationWindowSeconds"]["default"], None)
    assert "default" not in down["maxStepPods"]
    assert parsed.scale_up == StepRule(0, 4)
    assert parsed.scale_down == StepRule(300, None)
    assert parsed.paused is False
    assert parsed.target_kind == "Deployment"
    metric = props["metric"]["properties"]
    assert parsed.metric.drain_rate_query == metric["drainRateQuery"]["default"]
    assert parsed.metric.lag_query == metric["lagQuery"]["default"]
    assert parsed.activation_threshold == props["activationThreshold"]["default"] == 0
    assert parsed.cooldown_period == props["cooldownPeriodSeconds"]["default"] == 300
    assert parsed.target_drain_seconds is None
    assert parsed.target_lag_seconds is None
    assert parsed.fallback is None
    assert "default" not in props["fallback"]
    fallback = props["fallback"]["properties"]
    with_fallback = parse_spec({"scaleTargetRef": {"name": "w"}, "fallback": {"replicas": 4}})
    assert with_fallback.fallback == Fallback(fallback["failureThreshold"]["default"], 4)


def test_full_spec() -> None:
    parsed = parse_spec(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "w"},
            "minReplicas": 0,
            "maxReplicas": 3,
            "metric": {"source": "redis", "redisUrl": "redis://r:6379/0"},
            "targetDepthPerReplica": 10,
            "pollIntervalSeconds": 1,
            "behavior": {
                "scaleUp": {"maxStepPods": 2},
                "scaleDown": {"stabilizationWindowSeconds": 4},
            },
            "paused": True,
            "targetDrainSeconds": 30,
            "targetLagSeconds": 20,
            "activationThreshold": 40,
            "cooldownPeriodSeconds": 60,
            "fallback": {"failureThreshold": 2, "replicas": 3},
        }
    )
    policy = parsed.policy
    assert (policy.min_replicas, policy.max_replicas, policy.target_per_replica) == (0, 3, 10)
    assert policy.scale_up == StepRule(0, 2)
    assert policy.scale_down == StepRule(4, None)
    assert (policy.period, policy.paused) == (1, True)
    assert (policy.target_drain_seconds, policy.target_lag_seconds) == (30, 20)
    assert (policy.activation, policy.cooldown, policy.fallback) == (40, 60, Fallback(2, 3))
    assert parsed.metric.redis_url == "redis://r:6379/0"
    assert parsed.metric.prometheus_url is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.scaleTargetRef is required"),
        ({"scaleTargetRef": {}}, "spec.scaleTargetRef.name is required"),
        ({"scaleTargetRef": {"name": "w", "kind": "StatefulSet"}}, "kind must be Deployment"),
        (
            {"scaleTargetRef": {"name": "w"}, "minReplicas": 5, "maxReplicas": 2},
            r"minReplicas \(5\)",
        ),
        (
            {"scaleTargetRef": {"name": "w"}, "minReplicas": -1},
            "spec.minReplicas must be at least 0",
        ),
        (
            {"scaleTargetRef": {"name": "w"}, "maxReplicas": "ten"},
            "spec.maxReplicas must be an integer",
        ),
        ({"scaleTargetRef": {"name": "w"}, "metric": {"source": "bogus"}}, "spec.metric.source"),
        ({"scaleTargetRef": {"name": "w"}, "metric": "redis"}, "spec.metric must be an object"),
        ({"scaleTargetRef": {"name": "w"}, "paused": "yes"}, "spec.paused"),
        ({"scaleTargetRef": {"name": "w"}, "pollIntervalSeconds": 0}, "spec.pollIntervalSeconds"),
        (
            {"scaleTargetRef": {"name": "w"}, "behavior": {"scaleDown": {"maxStepPods": 0}}},
            "spec.behavior.scaleDown.maxStepPods must be at least 1",
        ),
        ({"scaleTargetRef": {"name": "w"}, "fallback": {}}, "spec.fallback.replicas is required"),
        (
            {"scaleTargetRef": {"name": "w"}, "fallback": {"replicas": 1, "failureThreshold": 0}},
            "spec.fallback.failureThreshold must be at least 1",
        ),
        ({"scaleTargetRef": {"name": "w"}, "targetDrainSeconds": 0}, "spec.targetDrainSeconds"),
        ({"scaleTargetRef": {"name": "w"}, "activationThreshold": -1}, "activationThreshold"),
    ],
)
def test_bad_specs_are_named(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)
