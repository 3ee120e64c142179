"""The scaling decision: what was observed in, replica count out.

Pure: no I/O and no clock; time is a number of seconds passed in by the caller. It follows the
HorizontalPodAutoscaler's behaviour model, with KEDA's scale-to-zero and fallback:

1. the recommendation is the largest of ``ceil(depth / targetDepthPerReplica)``, the replicas
   that keep up with the arrivals and drain the backlog within ``targetDrainSeconds`` (see
   ``_drain``), and (when the oldest job waits longer than ``targetLagSeconds``) the ready
   replicas scaled by lag / target; clamped to [min, max];
2. with ``minReplicas: 0``, a target at zero wakes only when the depth exceeds the activation
   threshold, and returns to zero only after the queue has been inactive for the cooldown
   (KEDA's ``activationThreshold`` and ``cooldownPeriod``); in between, at least one replica;
3. stabilization: scaling up goes to the *lowest* recommendation of the scale-up window, scaling
   down to the *highest* of the scale-down window (so a brief dip never removes pods), and at
   most once per scale-down window (so a falling load never sheds pods poll after poll);
4. rate limits: at most ``maxStepPods`` added (or removed) per period, counted from the rescales
   of the current period, so deciding twice at one instant never moves further;
5. the result is always within [min, max]; paused, nothing changes; without a metric, nothing
   changes until ``fallback.failureThreshold`` readings in a row have failed, then the target
   goes to ``fallback.replicas`` through the same windows and limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

# A lag within 10 % of its target asks for nothing (the HPA's default tolerance).
LAG_TOLERANCE = 0.1
# How long a measured per-replica capacity is remembered, and over how long a span the depth's
# slope is taken (the span of the default drain-rate query, rate(...[1m])).
CAPACITY_MEMORY = 600.0
SLOPE_SPAN = 60.0


@dataclass(frozen=True)
class StepRule:
    """How one direction of scaling is damped; ``max_step`` None: no limit."""

    stabilization_window: float
    max_step: int | None


@dataclass(frozen=True)
class Fallback:
    """Replicas to run once the metric has failed ``failure_threshold`` readings in a row."""

    failure_threshold: int
    replicas: int


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
    target_drain_seconds: float | None = None
    target_lag_seconds: float | None = None
    # Scale to and from zero (minReplicas 0 only): depth that wakes a target at zero, and the
    # seconds without such a depth before it goes back to zero.
    activation: float = 0.0
    cooldown: float = 300.0
    fallback: Fallback | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"replica range [{self.min_replicas}, {self.max_replicas}] is empty or negative"
            )
        if self.target_per_replica <= 0:
            raise ValueError(f"target per replica must be positive, got {self.target_per_replica}")
        for rule in (self.scale_up, self.scale_down):
            if rule.max_step is not None and rule.max_step < 1:
                raise ValueError("maxStepPods must be at least 1")
        for name in ("target_drain_seconds", "target_lag_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.activation < 0 or self.cooldown < 0:
            raise ValueError("activation and cooldown must not be negative")
        if self.fallback is not None and self.fallback.failure_threshold < 1:
            raise ValueError("fallback.failureThreshold must be at least 1")


@dataclass(frozen=True)
class Observation:
    """One poll's readings; ``depth`` None: the metric could not be read."""

    depth: float | None
    # Ready replicas of the target (the divisor of the measured apply rate); None: unknown.
    ready: int | None = None
    # Clicks leaving the queue per second, all replicas together; None: not measured.
    drain_rate: float | None = None
    # Seconds the oldest waiting job has waited; None: not measured.
    lag: float | None = None


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
    last_scale_down: float | None = None
    # Last time the depth exceeded the activation threshold (scale to zero counts from it).
    last_active: float | None = None
    # Metric readings failed in a row.
    failures: int = 0
    # (at, clicks/s per ready replica) measured while every replica had work waiting.
    capacity: tuple[tuple[float, float], ...] = ()
    # (at, depth) of the last SLOPE_SPAN seconds: how fast the backlog grows or shrinks.
    depths: tuple[tuple[float, float], ...] = ()

    @classmethod
    def starting(cls, current: int, now: float) -> History:
        """After a (re)start, act as if the current size had just been recommended.

        Conservative: no scale-down before a full window, nor to zero before a full cooldown,
        has passed since the start.
        """
        return cls(
            recommendations=(Recommendation(now, current),),
            last_active=now if current > 0 else None,
        )


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
    # The replicas the readings call for, before clamping; None when paused, or without a
    # metric and no fallback yet.
    recommendation: int | None
    limit: Limit
    history: History
    reason: str = field(default="")
    # The history this decision started from (to undo it when the rescale fails).
    before: History = field(default_factory=History, repr=False)
    fallback: bool = False


# Beyond any maxReplicas: what a recommendation is cut to before it becomes an integer.
HUGE = 10**9


def recommend(depth: float, target_per_replica: float) -> int:
    """Replicas needed for a queue depth: ``ceil(depth / target)``, never negative."""
    return _replicas(depth / target_per_replica)


def _replicas(value: float) -> int:
    return max(0, math.ceil(min(value, HUGE)))


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def decide(
    policy: Policy, current: int, observed: Observation, history: History, now: float
) -> Decision:
    """The replica count to scale to, and the history to pass to the next decision."""
    if policy.paused:
        return Decision(current, current, None, Limit.NONE, history, "paused", history)
    depth = observed.depth
    if depth is None or not math.isfinite(depth):
        failures = history.failures + 1
        failed = replace(history, failures=failures)
        fallback = policy.fallback
        if fallback is None or failures < fallback.failure_threshold:
            return Decision(
                current, current, None, Limit.NONE, failed, "queue depth unavailable", history
            )
        reason = f"queue depth unavailable {failures} times in a row: fallback"
        return _stabilize(policy, current, fallback.replicas, failed, now, reason, history, True)

    active = depth > policy.activation
    last_active = now if active else history.last_active
    seen = _remember(policy, current, observed, depth, replace(history, failures=0), now)
    seen = replace(seen, last_active=last_active)
    raw, reason = _recommendation(policy, current, observed, depth, seen, now)
    to_zero = False
    if policy.min_replicas == 0:
        if current == 0 and not active:
            raw = 0
            reason += f", not above the activation threshold {policy.activation:g}"
        elif not active:
            # At least one replica until the cooldown ends: that is this step's window.
            to_zero = last_active is None or now - last_active >= policy.cooldown
            raw = max(raw, 1)
            reason += (
                f", inactive for the cooldown of {policy.cooldown:g}s"
                if to_zero
                else ", kept at 1 or more until the cooldown ends"
            )
        else:
            raw = max(raw, 1)
    return _stabilize(policy, current, raw, seen, now, reason, history, to_zero=to_zero)


def _remember(
    policy: Policy, current: int, observed: Observation, depth: float, history: History, now: float
) -> History:
    """The history with this reading's depth and, when every replica was busy, its capacity."""
    depths = (*(d for d in history.depths if now - d[0] <= SLOPE_SPAN), (now, depth))
    capacity = tuple(c for c in history.capacity if now - c[0] <= CAPACITY_MEMORY)
    ready = current if observed.ready is None else observed.ready
    rate = observed.drain_rate
    # A backlog of at least the target per replica keeps every replica busy: the apply rate is
    # then what the replicas can do, not what little they were given.
    busy = ready > 0 and depth >= policy.target_per_replica * ready
    if busy and rate is not None and math.isfinite(rate) and rate / ready > 0:
        capacity = (*capacity, (now, rate / ready))
    return replace(history, depths=depths, capacity=capacity)


def _recommendation(
    policy: Policy, current: int, observed: Observation, depth: float, history: History, now: float
) -> tuple[int, str]:
    """The largest of what the depth, the drain time and the lag call for, with the reason."""
    raw = recommend(depth, policy.target_per_replica)
    reason = f"queue depth {depth:g} at {policy.target_per_replica:g} per replica needs {raw}"
    ready = current if observed.ready is None else observed.ready
    drain = _drain(policy, observed, depth, history, now)
    if drain is not None and drain[0] > raw:
        raw, reason = drain
    lag, target_lag = observed.lag, policy.target_lag_seconds
    late = lag is not None and math.isfinite(lag) and lag > (target_lag or 0) * (1 + LAG_TOLERANCE)
    if target_lag is not None and lag is not None and late:
        by_lag = max(1, _replicas(ready * lag / target_lag))
        if by_lag > raw:
            raw = by_lag
            reason = f"lag {lag:.3g}s over the target {target_lag:g}s needs {raw}"
    return raw, reason


def _drain(
    policy: Policy, observed: Observation, depth: float, history: History, now: float
) -> tuple[int, str] | None:
    """Replicas that apply the arrivals and the backlog within ``targetDrainSeconds``.

    The backlog shrinks at (replicas x capacity - arrivals), so draining ``depth`` within T takes
    ``(arrivals + depth / T) / capacity`` replicas: with no backlog, just enough for the
    arrivals. Arrivals = the measured apply rate + the depth's slope; capacity = the highest
    apply rate per ready replica measured while every replica was busy in the last
    CAPACITY_MEMORY seconds (never measured: no recommendation from the drain time).
    """
    target, rate = policy.target_drain_seconds, observed.drain_rate
    if target is None or rate is None or not math.isfinite(rate) or not history.capacity:
        return None
    capacity = max(c for _, c in history.capacity)
    since, before = history.depths[0]
    slope = (depth - before) / (now - since) if now > since else 0.0
    arrivals = max(0.0, rate + slope)
    replicas = _replicas((arrivals + depth / target) / capacity)
    return replicas, (
        f"arrivals {arrivals:.4g}/s and queue depth {depth:g} drained within {target:g}s "
        f"at {capacity:.4g}/s per replica need {replicas}"
    )


def _stabilize(
    policy: Policy,
    current: int,
    raw: int,
    history: History,
    now: float,
    reason: str,
    before: History,
    fallback: bool = False,
    *,
    to_zero: bool = False,
) -> Decision:
    """Windows, the once-per-window scale-down, step limits and bounds, applied to ``raw``.

    ``to_zero``: the cooldown has passed; once the window allows a single replica, none.
    """
    bounded = clamp(raw, policy.min_replicas, policy.max_replicas)
    up, down = policy.scale_up, policy.scale_down
    # Past recommendations count while younger than the window (as the HPA's cutoff), so a
    # window of 0 is this recommendation alone, even one made at this very instant.
    keep = max(up.stabilization_window, down.stabilization_window)
    past = tuple(r for r in history.recommendations if now - r.at < keep)
    recommendations = (*past, Recommendation(now, bounded))
    up_floor = min([bounded, *(r.replicas for r in past if now - r.at < up.stabilization_window)])
    down_ceiling = max(
        [bounded, *(r.replicas for r in past if now - r.at < down.stabilization_window)]
    )
    stabilized = min(max(current, up_floor), down_ceiling)
    if stabilized != bounded:
        reason += f", stabilized at {stabilized} by the window"
    if to_zero and stabilized <= 1:
        stabilized = 0
    last_down = history.last_scale_down
    if (
        stabilized < current
        and last_down is not None
        and now - last_down < down.stabilization_window
    ):
        stabilized = current
        reason += f", held: the last scale-down was {now - last_down:.0f}s ago"

    rescales = tuple(r for r in history.rescales if now - r.at < policy.period)
    added = sum(max(0, r.new - r.old) for r in rescales)
    removed = sum(max(0, r.old - r.new) for r in rescales)
    limit = Limit.NONE
    desired = stabilized
    if stabilized > current and up.max_step is not None:
        desired = min(stabilized, max(current, current - added + up.max_step))
    elif stabilized < current and down.max_step is not None:
        desired = max(stabilized, min(current, current + removed - down.max_step))
    if desired != stabilized:
        limit = Limit.SCALE_UP_LIMIT if stabilized > current else Limit.SCALE_DOWN_LIMIT
        reason += f", limited to {desired} by maxStepPods"
    desired = clamp(desired, policy.min_replicas, policy.max_replicas)
    if limit is Limit.NONE and raw > policy.max_replicas:
        limit = Limit.TOO_MANY
        reason += f", bounded by maxReplicas {policy.max_replicas}"
    elif limit is Limit.NONE and raw < policy.min_replicas:
        limit = Limit.TOO_FEW
        reason += f", bounded by minReplicas {policy.min_replicas}"

    if desired != current:
        rescales = (*rescales, Rescale(now, current, desired))
    next_history = replace(
        history,
        recommendations=recommendations,
        rescales=rescales,
        last_scale_down=now if desired < current else last_down,
    )
    return Decision(current, desired, raw, limit, next_history, reason, before, fallback)


def after(decision: Decision, *, scaled: bool) -> History:
    """The history after acting on a decision: a failed rescale counts against no limit."""
    if scaled or decision.desired == decision.current:
        return decision.history
    return replace(
        decision.history,
        rescales=decision.history.rescales[:-1],
        last_scale_down=decision.before.last_scale_down,
    )
