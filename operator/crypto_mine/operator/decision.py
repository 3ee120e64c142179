"""The scaling decision: queue depth in, replica count out.

Pure: no I/O and no clock; time is a number of seconds passed in by the caller. It follows the
HorizontalPodAutoscaler's behaviour model:

1. the recommendation is ``ceil(depth / targetDepthPerReplica)`` clamped to [min, max];
2. stabilization: scaling up goes to the *lowest* recommendation of the scale-up window, scaling
   down to the *highest* of the scale-down window (so a brief dip never removes pods);
3. rate limits: at most ``maxStepPods`` added (or removed) per period, counted from the rescales
   of the current period, so deciding twice at one instant never moves further;
4. the result is always within [min, max]; paused or without a metric, nothing changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum


@dataclass(frozen=True)
class StepRule:
    """How one direction of scaling is damped."""

    stabilization_window: float
    max_step: int


@dataclass(frozen=True)
class Policy:
    """The part of a QueueAutoscaler spec the decision needs."""

    min_replicas: int
    max_replicas: int
    target_per_replica: float
    scale_up: StepRule
    scale_down: StepRule
    # maxStepPods applies per period (the poll interval).
    period: float
    paused: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"replica range [{self.min_replicas}, {self.max_replicas}] is empty or negative"
            )
        if self.target_per_replica <= 0:
            raise ValueError(f"target per replica must be positive, got {self.target_per_replica}")
        if self.scale_up.max_step < 1 or self.scale_down.max_step < 1:
            raise ValueError("maxStepPods must be at least 1")


@dataclass(frozen=True)
class Recommendation:
    at: float
    replicas: int


@dataclass(frozen=True)
class Rescale:
    at: float
    old: int
    new: int


@dataclass(frozen=True)
class History:
    """What past decisions the next one depends on; kept in memory per QueueAutoscaler."""

    recommendations: tuple[Recommendation, ...] = ()
    rescales: tuple[Rescale, ...] = ()

    @classmethod
    def starting(cls, current: int, now: float) -> History:
        """After a (re)start, act as if the current size had just been recommended.

        Conservative: no scale-down before a full window has passed since the start.
        """
        return cls(recommendations=(Recommendation(now, current),))


class Limit(StrEnum):
    """Why the decision differs from the bare recommendation (HPA's ScalingLimited reasons)."""

    NONE = "DesiredWithinRange"
    TOO_FEW = "TooFewReplicas"
    TOO_MANY = "TooManyReplicas"
    SCALE_UP_LIMIT = "ScaleUpLimit"
    SCALE_DOWN_LIMIT = "ScaleDownLimit"


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    # ceil(depth / target) before clamping; None when paused or without a metric.
    recommendation: int | None
    limit: Limit
    history: History
    reason: str = field(default="")


def recommend(depth: float, target_per_replica: float) -> int:
    """Replicas needed for a queue depth: ``ceil(depth / target)``, never negative."""
    return max(0, math.ceil(depth / target_per_replica))


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def decide(
    policy: Policy, current: int, depth: float | None, history: History, now: float
) -> Decision:
    """The replica count to scale to, and the history to pass to the next decision."""
    if policy.paused:
        return Decision(current, current, None, Limit.NONE, history, "paused")
    if depth is None or not math.isfinite(depth):
        return Decision(current, current, None, Limit.NONE, history, "queue depth unavailable")

    raw = recommend(depth, policy.target_per_replica)
    bounded = clamp(raw, policy.min_replicas, policy.max_replicas)
    up, down = policy.scale_up, policy.scale_down
    keep = max(up.stabilization_window, down.stabilization_window)
    recommendations = (
        *(r for r in history.recommendations if now - r.at <= keep),
        Recommendation(now, bounded),
    )
    up_floor = min(r.replicas for r in recommendations if now - r.at <= up.stabilization_window)
    down_ceiling = max(
        r.replicas for r in recommendations if now - r.at <= down.stabilization_window
    )
    stabilized = min(max(current, up_floor), down_ceiling)

    rescales = tuple(r for r in history.rescales if now - r.at < policy.period)
    added = sum(max(0, r.new - r.old) for r in rescales)
    removed = sum(max(0, r.old - r.new) for r in rescales)
    limit = Limit.NONE
    if stabilized > current:
        ceiling = max(current, current - added + up.max_step)
        desired = min(stabilized, ceiling)
        if desired < stabilized:
            limit = Limit.SCALE_UP_LIMIT
    elif stabilized < current:
        floor = min(current, current + removed - down.max_step)
        desired = max(stabilized, floor)
        if desired > stabilized:
            limit = Limit.SCALE_DOWN_LIMIT
    else:
        desired = current
    desired = clamp(desired, policy.min_replicas, policy.max_replicas)
    if limit is Limit.NONE and raw > policy.max_replicas:
        limit = Limit.TOO_MANY
    elif limit is Limit.NONE and raw < policy.min_replicas:
        limit = Limit.TOO_FEW

    if desired != current:
        rescales = (*rescales, Rescale(now, current, desired))
    reason = _reason(depth, policy, raw, bounded, stabilized, desired, current, limit)
    return Decision(current, desired, raw, limit, History(recommendations, rescales), reason)


def after(decision: Decision, *, scaled: bool) -> History:
    """The history after acting on a decision: a failed rescale is not counted against limits."""
    if scaled or decision.desired == decision.current:
        return decision.history
    return replace(decision.history, rescales=decision.history.rescales[:-1])


def _reason(
    depth: float,
    policy: Policy,
    raw: int,
    bounded: int,
    stabilized: int,
    desired: int,
    current: int,
    limit: Limit,
) -> str:
    base = f"queue depth {depth:g} at {policy.target_per_replica:g} per replica needs {raw}"
    if raw != bounded:
        base += f", bounded to {bounded} by [{policy.min_replicas}, {policy.max_replicas}]"
    if desired != stabilized and limit in (Limit.SCALE_UP_LIMIT, Limit.SCALE_DOWN_LIMIT):
        base += f", limited to {desired} by maxStepPods"
    elif stabilized != bounded and desired == current:
        base += f", held at {current} by the stabilization window"
    elif stabilized != bounded:
        base += f", stabilized at {stabilized}"
    return base
