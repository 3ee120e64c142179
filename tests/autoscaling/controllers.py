"""Three autoscalers as functions of what they see, for replaying one recorded load on each.

- ``Operator``: this project's decision (``crypto_mine.operator.decision.decide``), polled every
  ``pollIntervalSeconds``, reading the depth straight from Redis.
- ``Hpa``: the HorizontalPodAutoscaler's documented algorithm on an External ``AverageValue``
  metric: every sync period (15 s) ``ceil(value / target)`` unless the usage ratio is within
  the tolerance (0.1), then the behavior's stabilization windows and rate policies.
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#configurable-scaling-behavior
  (the code they describe: kubernetes/pkg/controller/podautoscaler/horizontal.go,
  ``stabilizeRecommendationWithBehaviors`` and ``calculateScale{Up,Down}LimitWithScalingRules``).
- ``Keda``: KEDA's documented defaults on top of that HPA: ``pollingInterval`` 30 s for the
  activation phase (0 -> 1 when the metric exceeds ``activationThreshold`` 0, 1 -> 0 after
  ``cooldownPeriod`` 300 s inactive), ``minReplicaCount`` 0, and the HPA's default behavior
  (scale up by max(100 %, 4 pods) per 15 s, no up window; down 100 % per 15 s after a 300 s window).
  https://keda.sh/docs/2.12/reference/scaledobject-spec/ and
  https://keda.sh/docs/2.12/concepts/scaling-deployments/

Both read the metric through Prometheus, so they see the depth as of its last scrape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from crypto_mine.operator.decision import History, Observation, Policy, decide


@dataclass(frozen=True)
class View:
    """What an autoscaler can know at one instant."""

    now: float
    spec: int  # replicas asked of the Deployment
    existing: int  # pods that exist (the HPA's "status replicas")
    depth: float  # the queue depth as this autoscaler's metric path delivers it
    ready: int = 0  # Ready pods
    applied: float | None = None  # clicks/s applied lately (rate(...) over Prometheus samples)


class Autoscaler(Protocol):
    name: str
    # Seconds between the metric being true and the autoscaler seeing it (a scrape interval).
    metric_delay: float

    def tick(self, view: View) -> int | None:
        """The new replica count when it decides to change it at ``view.now``, else None."""
        ...


@dataclass
class Operator:
    policy: Policy
    name: str = "operator"
    metric_delay: float = 0.0
    history: History | None = None
    next_poll: float = 0.0

    def tick(self, view: View) -> int | None:
        if view.now < self.next_poll:
            return None
        self.next_poll = view.now + self.policy.period
        history = self.history or History.starting(view.spec, view.now)
        observed = Observation(view.depth, view.ready, view.applied)
        decision = decide(self.policy, view.spec, observed, history, view.now)
        self.history = decision.history
        return decision.desired if decision.desired != view.spec else None


@dataclass(frozen=True)
class ScalingPolicy:
    kind: str  # "Pods" or "Percent"
    value: int
    period: float


@dataclass(frozen=True)
class ScalingRules:
    window: float
    policies: tuple[ScalingPolicy, ...]
    select: str = "Max"


# The HPA's defaults for a missing behavior (the documentation's "Default Behavior").
DEFAULT_UP = ScalingRules(0, (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)))
DEFAULT_DOWN = ScalingRules(300, (ScalingPolicy("Percent", 100, 15),))


@dataclass
class Hpa:
    min_replicas: int
    max_replicas: int
    target: float  # AverageValue per pod
    up: ScalingRules = DEFAULT_UP
    down: ScalingRules = DEFAULT_DOWN
    sync_period: float = 15.0
    tolerance: float = 0.1
    name: str = "hpa"
    metric_delay: float = 30.0
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)
    next_sync: float = 0.0

    def tick(self, view: View) -> int | None:
        if view.now < self.next_sync:
            return None
        self.next_sync = view.now + self.sync_period
        return self.decide(view)

    def decide(self, view: View) -> int | None:
        current = view.spec
        proposed = self._proposal(view)
        desired = self._stabilize(view.now, current, proposed)
        desired = self._rate_limit(view.now, current, desired)
        if desired > current:
            self.up_events.append((view.now, desired - current))
        elif desired < current:
            self.down_events.append((view.now, current - desired))
        return desired if desired != current else None

    def _proposal(self, view: View) -> int:
        """GetExternalPerPodMetricReplicas: ceil(value / target) outside the tolerance."""
        if view.existing > 0:
            ratio = view.depth / (self.target * view.existing)
            if abs(1.0 - ratio) <= self.tolerance:
                return view.existing
        return math.ceil(view.depth / self.target)

    def _stabilize(self, now: float, current: int, proposed: int) -> int:
        """Up to the lowest recommendation of the up window, down to the highest of the down."""
        self.recommendations.append((now, proposed))
        keep = max(self.up.window, self.down.window)
        # A recommendation counts while it is younger than the window (timestamp.After(cutoff)).
        kept = [(t, r) for t, r in self.recommendations if now - t < keep or t == now]
        self.recommendations = kept
        up = min(r for t, r in kept if now - t < self.up.window or t == now)
        down = max(r for t, r in kept if now - t < self.down.window or t == now)
        recommendation = current
        recommendation = max(recommendation, up)
        recommendation = min(recommendation, down)
        return recommendation

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            limit = max(current, _up_limit(now, current, self.up_events, self.up))
            return min(desired, self.max_replicas, limit)
        if desired < current:
            limit = min(current, _down_limit(now, current, self.down_events, self.down))
            return max(desired, self.min_replicas, limit)
        return max(self.min_replicas, min(self.max_replicas, desired))


def _up_limit(
    now: float, current: int, events: list[tuple[float, int]], rules: ScalingRules
) -> int:
    limits = []
    for policy in rules.policies:
        added = sum(n for t, n in events if now - t < policy.period)
        start = current - added
        if policy.kind == "Pods":
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
    return max(limits) if rules.select == "Max" else min(limits)


def _down_limit(
    now: float, current: int, events: list[tuple[float, int]], rules: ScalingRules
) -> int:
    limits = []
    for policy in rules.policies:
        removed = sum(n for t, n in events if now - t < policy.period)
        start = current + removed
        if policy.kind == "Pods":
            limits.append(start - policy.value)
        else:
            limits.append(int(start * (1 - policy.value / 100)))
    return min(limits) if rules.select == "Max" else max(limits)


@dataclass
class Keda:
    """KEDA's activation phase around an HPA with its default behavior."""

    max_replicas: int
    target: float
    min_replicas: int = 0
    polling_interval: float = 30.0
    cooldown: float = 300.0
    activation: float = 0.0
    name: str = "keda"
    metric_delay: float = 30.0
    hpa: Hpa = field(init=False)
    last_active: float | None = None
    next_poll: float = 0.0

    def __post_init__(self) -> None:
        self.hpa = Hpa(max(1, self.min_replicas), self.max_replicas, self.target)

    def tick(self, view: View) -> int | None:
        if view.now >= self.next_poll:
            self.next_poll = view.now + self.polling_interval
            active = view.depth > self.activation
            if active:
                self.last_active = view.now
            if view.spec == 0 and active:
                return max(1, self.min_replicas)
            quiet = self.last_active is None or view.now - self.last_active > self.cooldown
            if view.spec > 0 and not active and quiet and self.min_replicas == 0:
                return 0
        if view.spec == 0:  # the HPA does not scale a target at zero
            return None
        return self.hpa.tick(view)
