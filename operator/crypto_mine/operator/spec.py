"""The QueueAutoscaler custom resource: its coordinates and its spec, read and checked.

The CRD's schema (charts/crypto-mine/crds/queueautoscalers.yaml) applies the same defaults and
most of these checks at the API server; what a v1.20 schema cannot say (minReplicas <=
maxReplicas) and what an older stored object may lack is checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crypto_mine.operator.decision import Policy, StepRule

GROUP = "autoscaling.crypto-mine.io"
VERSION = "v1alpha1"
PLURAL = "queueautoscalers"
KIND = "QueueAutoscaler"
# kopf's finalizer on every QueueAutoscaler it serves (its daemons stop before the object goes).
FINALIZER = f"{GROUP}/finalizer"

SOURCES = ("prometheus", "redis")
DEFAULT_QUERY = "sum(mining_click_queue_depth)"


class SpecError(ValueError):
    """A QueueAutoscaler spec the operator cannot act on; the message names the field."""


@dataclass(frozen=True)
class MetricSpec:
    source: str
    query: str
    prometheus_url: str | None
    redis_url: str | None


@dataclass(frozen=True)
class AutoscalerSpec:
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    metric: MetricSpec
    target_depth_per_replica: int
    poll_interval: int
    scale_up: StepRule
    scale_down: StepRule
    paused: bool

    @property
    def policy(self) -> Policy:
        return Policy(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target_per_replica=self.target_depth_per_replica,
            scale_up=self.scale_up,
            scale_down=self.scale_down,
            period=self.poll_interval,
            paused=self.paused,
        )


def parse_spec(spec: Mapping[str, Any]) -> AutoscalerSpec:
    """A checked spec, with the CRD's defaults for what is missing; raises :class:`SpecError`."""
    target = _object(spec, "scaleTargetRef", required=True)
    kind = _string(target, "scaleTargetRef.kind", "kind", "Deployment")
    if kind != "Deployment":
        raise SpecError(f"spec.scaleTargetRef.kind must be Deployment, got {kind!r}")
    name = _string(target, "scaleTargetRef.name", "name", None)

    metric = _object(spec, "metric")
    source = _string(metric, "metric.source", "source", "prometheus")
    if source not in SOURCES:
        raise SpecError(f"spec.metric.source must be one of {', '.join(SOURCES)}, got {source!r}")
    metric_spec = MetricSpec(
        source=source,
        query=_string(metric, "metric.query", "query", DEFAULT_QUERY),
        prometheus_url=_optional_string(metric, "metric.prometheusUrl", "prometheusUrl"),
        redis_url=_optional_string(metric, "metric.redisUrl", "redisUrl"),
    )

    behavior = _object(spec, "behavior")
    up = _object(behavior, "scaleUp", path="behavior.scaleUp")
    down = _object(behavior, "scaleDown", path="behavior.scaleDown")
    parsed = AutoscalerSpec(
        target_kind=kind,
        target_name=name,
        min_replicas=_int(spec, "minReplicas", 1, low=0),
        max_replicas=_int(spec, "maxReplicas", 20, low=1),
        metric=metric_spec,
        target_depth_per_replica=_int(spec, "targetDepthPerReplica", 500, low=1),
        poll_interval=_int(spec, "pollIntervalSeconds", 5, low=1, high=3600),
        scale_up=StepRule(
            stabilization_window=_int(
                up, "stabilizationWindowSeconds", 0, low=0, high=3600, path="behavior.scaleUp"
            ),
            max_step=_int(up, "maxStepPods", 4, low=1, path="behavior.scaleUp"),
        ),
        scale_down=StepRule(
            stabilization_window=_int(
                down, "stabilizationWindowSeconds", 300, low=0, high=3600, path="behavior.scaleDown"
            ),
            max_step=_int(down, "maxStepPods", 1, low=1, path="behavior.scaleDown"),
        ),
        paused=_bool(spec, "paused", False),
    )
    if parsed.min_replicas > parsed.max_replicas:
        raise SpecError(
            f"spec.minReplicas ({parsed.min_replicas}) must not exceed "
            f"spec.maxReplicas ({parsed.max_replicas})"
        )
    return parsed


def _object(
    parent: Mapping[str, Any], key: str, *, required: bool = False, path: str | None = None
) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise SpecError(f"spec.{path or key} is required")
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{path or key} must be an object, got {type(value).__name__}")
    return value


def _string(parent: Mapping[str, Any], path: str, key: str, default: str | None) -> str:
    value = parent.get(key, default)
    if value is None:
        raise SpecError(f"spec.{path} is required")
    if not isinstance(value, str) or not value:
        raise SpecError(f"spec.{path} must be a non-empty string, got {value!r}")
    return value


def _optional_string(parent: Mapping[str, Any], path: str, key: str) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SpecError(f"spec.{path} must be a string, got {value!r}")
    return value


def _int(
    parent: Mapping[str, Any],
    key: str,
    default: int,
    *,
    low: int,
    high: int | None = None,
    path: str | None = None,
) -> int:
    where = f"spec.{path}.{key}" if path else f"spec.{key}"
    value = parent.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise SpecError(f"{where} must be {bounds}, got {value}")
    return value


def _bool(parent: Mapping[str, Any], key: str, default: bool) -> bool:
    value = parent.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"spec.{key} must be true or false, got {value!r}")
    return value
