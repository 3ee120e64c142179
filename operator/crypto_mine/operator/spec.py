"""The QueueAutoscaler custom resource: its coordinates and its spec, read and checked.

The CRD's schema (charts/crypto-mine/crds/queueautoscalers.yaml) applies the same defaults and
most of these checks at the API server; what a v1.20 schema cannot say (minReplicas <=
maxReplicas) and what an older stored object may lack is checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .decision import Fallback, Policy, StepRule

GROUP = "autoscaling.crypto-mine.io"
VERSION = "v1alpha1"
PLURAL = "queueautoscalers"
KIND = "QueueAutoscaler"
# kopf's finalizer on every QueueAutoscaler it serves (its daemons stop before the object goes).
FINALIZER = f"{GROUP}/finalizer"

SOURCES = ("prometheus", "redis")
DEFAULT_QUERY = "sum(mining_click_queue_depth)"
# Clicks applied per second, all replicas together, for targetDrainSeconds.
DEFAULT_DRAIN_RATE_QUERY = "sum(rate(mining_worker_processed_total[1m]))"
# Seconds the oldest waiting job has waited, for targetLagSeconds (source prometheus).
DEFAULT_LAG_QUERY = "max(mining_worker_lag_seconds)"


class SpecError(ValueError):
    """A QueueAutoscaler spec the operator cannot act on; the message names the field."""


@dataclass(frozen=True)
class MetricSpec:
    source: str
    query: str
    prometheus_url: str | None
    redis_url: str | None
    drain_rate_query: str = DEFAULT_DRAIN_RATE_QUERY
    lag_query: str = DEFAULT_LAG_QUERY
    shard: int = 0  # the click shard whose queue is read (source redis)


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
    target_drain_seconds: int | None = None
    target_lag_seconds: int | None = None
    activation_threshold: float = 0.0
    cooldown_period: int = 300
    fallback: Fallback | None = None

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
            target_drain_seconds=self.target_drain_seconds,
            target_lag_seconds=self.target_lag_seconds,
            activation=self.activation_threshold,
            cooldown=self.cooldown_period,
            fallback=self.fallback,
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
        drain_rate_query=_string(
            metric, "metric.drainRateQuery", "drainRateQuery", DEFAULT_DRAIN_RATE_QUERY
        ),
        lag_query=_string(metric, "metric.lagQuery", "lagQuery", DEFAULT_LAG_QUERY),
        shard=_int(metric, "shard", 0, low=0, path="metric"),
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
            max_step=_optional_int(up, "maxStepPods", low=1, path="behavior.scaleUp", default=4),
        ),
        scale_down=StepRule(
            stabilization_window=_int(
                down, "stabilizationWindowSeconds", 300, low=0, high=3600, path="behavior.scaleDown"
            ),
            max_step=_optional_int(down, "maxStepPods", low=1, path="behavior.scaleDown"),
        ),
        paused=_bool(spec, "paused", False),
        target_drain_seconds=_optional_int(spec, "targetDrainSeconds", low=1, high=86400),
        target_lag_seconds=_optional_int(spec, "targetLagSeconds", low=1, high=86400),
        activation_threshold=_int(spec, "activationThreshold", 0, low=0),
        cooldown_period=_int(spec, "cooldownPeriodSeconds", 300, low=0, high=86400),
        fallback=_fallback(spec),
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


def _fallback(spec: Mapping[str, Any]) -> Fallback | None:
    if spec.get("fallback") is None:
        return None
    fallback = _object(spec, "fallback")
    if "replicas" not in fallback:
        raise SpecError("spec.fallback.replicas is required")
    return Fallback(
        failure_threshold=_int(fallback, "failureThreshold", 3, low=1, path="fallback"),
        replicas=_int(fallback, "replicas", 0, low=0, path="fallback"),
    )


def _optional_int(
    parent: Mapping[str, Any],
    key: str,
    *,
    low: int,
    high: int | None = None,
    path: str | None = None,
    default: int | None = None,
) -> int | None:
    if parent.get(key, default) is None:
        return None
    return _int(parent, key, default or 0, low=low, high=high, path=path)


def _bool(parent: Mapping[str, Any], key: str, default: bool) -> bool:
    value = parent.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"spec.{key} must be true or false, got {value!r}")
    return value
