"""The scaling decision, without a cluster: examples, then properties over random histories."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_mine.operator.decision import (
    Decision,
    History,
    Limit,
    Policy,
    Recommendation,
    Rescale,
    StepRule,
    after,
    clamp,
    decide,
    recommend,
)

UP = StepRule(0, 4)
DOWN = StepRule(300, 1)


def policy(
    min_replicas: int = 1,
    max_replicas: int = 20,
    target: float = 500,
    up: StepRule = UP,
    down: StepRule = DOWN,
    period: float = 5,
    paused: bool = False,
) -> Policy:
    return Policy(min_replicas, max_replicas, target, up, down, period, paused)


# -- examples ---------------------------------------------------------------------------------


def test_recommendation_is_the_ceiling_of_depth_over_target() -> None:
    assert recommend(0, 500) == 0
    assert recommend(1, 500) == 1
    assert recommend(500, 500) == 1
    assert recommend(501, 500) == 2
    assert recommend(-10, 500) == 0


def test_scales_up_at_most_max_step_per_period() -> None:
    first = decide(policy(), 1, 5000, History(), now=0)
    assert (first.desired, first.recommendation, first.limit) == (5, 10, Limit.SCALE_UP_LIMIT)
    # Deciding again at the same instant adds nothing: the period's budget is spent.
    again = decide(policy(), first.desired, 5000, first.history, now=0)
    assert again.desired == 5
    # One period later, the next step.
    later = decide(policy(), 5, 5000, again.history, now=5)
    assert later.desired == 9
    last = decide(policy(), 9, 5000, later.history, now=10)
    assert (last.desired, last.limit) == (10, Limit.NONE)


def test_scale_down_waits_for_the_window_then_steps() -> None:
    p = policy(down=StepRule(60, 2))
    high = decide(p, 1, 4000, History(), now=0)
    assert high.desired == 5
    history = high.history
    for now in (5, 30, 60):
        held = decide(p, 5, 0, history, now=now)
        assert held.desired == 5, f"scaled down at t={now}, inside the window"
        history = held.history
    # The t=0 recommendation of 8 replicas (bounded) leaves the window after 60 s.
    down = decide(p, 5, 0, history, now=61)
    assert (down.desired, down.limit) == (3, Limit.SCALE_DOWN_LIMIT)
    down = decide(p, 3, 0, down.history, now=66)
    assert down.desired == 1


def test_bounds_win_over_the_recommendation() -> None:
    p = policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100))
    assert decide(p, 2, 10**9, History(), now=0).desired == 6
    assert decide(p, 2, 10**9, History(), now=0).limit is Limit.TOO_MANY
    low = decide(p, 2, 0, History(), now=0)
    assert (low.desired, low.limit) == (2, Limit.TOO_FEW)


def test_current_outside_the_bounds_is_brought_back() -> None:
    p = policy(min_replicas=2, max_replicas=6)
    assert decide(p, 0, 0, History(), now=0).desired == 2
    assert decide(p, 30, 10**6, History(), now=0).desired == 6


def test_paused_changes_nothing() -> None:
    history = History((Recommendation(0, 7),))
    decision = decide(policy(paused=True), 3, 10**6, history, now=1)
    assert decision == Decision(3, 3, None, Limit.NONE, history, "paused")


@pytest.mark.parametrize("depth", [None, float("nan"), float("inf")])
def test_unreadable_metric_changes_nothing(depth: float | None) -> None:
    history = History((Recommendation(0, 7),))
    decision = decide(policy(), 30, depth, history, now=1)
    assert decision == Decision(30, 30, None, Limit.NONE, history, "queue depth unavailable")


def test_reasons_say_what_bounded_limited_or_held_the_size() -> None:
    plain = decide(policy(), 1, 1000, History(), now=0)
    assert (plain.current, plain.desired, plain.limit) == (1, 2, Limit.NONE)
    assert plain.reason == "queue depth 1000 at 500 per replica needs 2"
    bounded = decide(
        policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100)), 2, 1e9, History(), 0
    )
    assert bounded.reason == (
        "queue depth 1e+09 at 500 per replica needs 2000000, bounded to 6 by [2, 6]"
    )
    limited = decide(policy(), 1, 5000, History(), now=0)
    assert (
        limited.reason
        == "queue depth 5000 at 500 per replica needs 10, limited to 5 by maxStepPods"
    )
    held = decide(policy(up=StepRule(30, 4)), 2, 5000, History.starting(2, 0), now=10)
    assert held.reason == (
        "queue depth 5000 at 500 per replica needs 10, held at 2 by the stabilization window"
    )
    history = History((Recommendation(0, 4),))
    stabilized = decide(policy(up=StepRule(30, 100)), 2, 5000, history, now=10)
    assert stabilized.desired == 4
    assert stabilized.reason == "queue depth 5000 at 500 per replica needs 10, stabilized at 4"
    down = decide(policy(down=StepRule(0, 1)), 5, 0, History(), now=0)
    assert (down.desired, down.limit) == (4, Limit.SCALE_DOWN_LIMIT)
    assert down.reason == (
        "queue depth 0 at 500 per replica needs 0, bounded to 1 by [1, 20], "
        "limited to 4 by maxStepPods"
    )


def test_a_recommendation_at_a_bound_is_not_limited() -> None:
    p = policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100), down=StepRule(0, 100))
    assert decide(p, 2, 3000, History(), now=0).limit is Limit.NONE  # needs 6, the maximum
    assert decide(p, 6, 1000, History(), now=0).limit is Limit.NONE  # needs 2, the minimum
    assert decide(p, 2, 3001, History(), now=0).limit is Limit.TOO_MANY
    assert decide(p, 6, 500, History(), now=0).limit is Limit.TOO_FEW
    step = decide(policy(down=StepRule(0, 3)), 5, 1000, History(), now=0)
    assert (step.desired, step.limit) == (2, Limit.NONE), "a scale-down within its step"


def test_the_step_budget_counts_each_direction_apart() -> None:
    """A scale-down in a period leaves the whole scale-up step, and the other way round."""
    p = policy(up=StepRule(0, 2), down=StepRule(0, 2), period=100)
    down = decide(p, 10, 4000, History(), now=0)  # needs 8: two down
    assert down.desired == 8
    up = decide(p, 8, 10_000, down.history, now=1)  # needs 20: two up, the removal not counted
    assert up.desired == 10
    again = decide(p, 10, 10_000, up.history, now=2)
    assert again.desired == 10, "the up step of this period is spent"
    up_first = decide(p, 10, 6000, History(), now=0)  # needs 12: two up
    assert up_first.desired == 12
    then_down = decide(p, 12, 0, up_first.history, now=1)
    assert then_down.desired == 10


def test_only_the_failed_rescale_is_given_back() -> None:
    p = policy(up=StepRule(0, 2), down=StepRule(0, 2), period=100)
    down = decide(p, 10, 4000, History(), now=0)
    up = decide(p, 8, 10_000, down.history, now=1)
    assert up.history.rescales == (Rescale(0, 10, 8), Rescale(1, 8, 10))
    assert after(up, scaled=False).rescales == (Rescale(0, 10, 8),)


def test_a_failed_rescale_does_not_spend_the_step_budget() -> None:
    first = decide(policy(), 1, 5000, History(), now=0)
    kept = after(first, scaled=False)
    assert kept.rescales == ()
    assert kept.recommendations == first.history.recommendations
    assert decide(policy(), 1, 5000, kept, now=0).desired == 5
    assert after(first, scaled=True) == first.history


def test_starting_history_holds_off_scale_down_for_a_window() -> None:
    p = policy(down=StepRule(300, 1))
    history = History.starting(10, now=1000)
    assert decide(p, 10, 0, history, now=1200).desired == 10
    assert decide(p, 10, 0, history, now=1301).desired == 9


def test_scale_up_waits_until_the_whole_window_asks_for_more() -> None:
    p = policy(up=StepRule(30, 100), down=StepRule(0, 100))
    history = History.starting(2, now=0)
    spike = decide(p, 2, 5000, history, now=10)  # 10 replicas asked for, 2 at t=0
    assert (spike.desired, spike.recommendation) == (2, 10)
    assert "held at 2 by the stabilization window" in spike.reason
    dip = decide(p, 2, 2000, spike.history, now=20)  # 4 now: the lowest of the window rules
    assert dip.desired == 2
    # t=0 leaves the window: the lowest of 10 (t=10), 4 (t=20) and 10 (t=31) is 4.
    partly = decide(p, 2, 5000, dip.history, now=31)
    assert (partly.desired, partly.limit) == (4, Limit.NONE)
    assert "stabilized at 4" in partly.reason
    # t=20 leaves it too: every recommendation of the last 30 s asks for 10.
    full = decide(p, 4, 5000, partly.history, now=51)
    assert full.desired == 10


def test_a_brief_spike_inside_the_scale_up_window_adds_no_pods() -> None:
    p = policy(up=StepRule(60, 4))
    history = History.starting(3, now=0)
    current = 3
    for now, depth in [(5, 1500), (10, 10_000), (15, 1500), (20, 1500), (65, 1500), (70, 1500)]:
        decision = decide(p, current, depth, history, now)
        assert decision.desired == 3, f"scaled to {decision.desired} at t={now}"
        history, current = decision.history, decision.desired


def test_policy_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match=r"\[5, 2\]"):
        policy(min_replicas=5, max_replicas=2)


@pytest.mark.parametrize(
    ("target", "up_step", "down_step", "message"),
    [
        (0, 1, 1, "target per replica must be positive, got 0"),
        (-1, 1, 1, "target per replica must be positive, got -1"),
        (500, 0, 1, "maxStepPods must be at least 1"),
        (500, 1, 0, "maxStepPods must be at least 1"),
    ],
)
def test_policy_rejects_what_cannot_scale(
    target: float, up_step: int, down_step: int, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        policy(target=target, up=StepRule(0, up_step), down=StepRule(0, down_step))


# -- properties -------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn, paused: bool | None = False) -> Policy:
    low = draw(st.integers(0, 30))
    high = draw(st.integers(max(low, 1), 60))
    return Policy(
        min_replicas=low,
        max_replicas=high,
        target_per_replica=draw(st.integers(1, 1000)),
        scale_up=StepRule(draw(st.integers(0, 120)), draw(st.integers(1, 10))),
        scale_down=StepRule(draw(st.integers(0, 600)), draw(st.integers(1, 10))),
        period=draw(st.integers(1, 30)),
        paused=draw(st.booleans()) if paused is None else paused,
    )


depths = st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False), st.integers(0, 10**6))
steps = st.lists(st.tuples(st.floats(0, 90), depths), min_size=1, max_size=40)


@dataclass
class Step:
    now: float
    current: int
    depth: float | None
    decision: Decision


def simulate(p: Policy, start: int, moves: list[tuple[float, float | None]]) -> list[Step]:
    """Apply every decision, as the operator does, over a run of polls."""
    now, current, history = 0.0, start, History.starting(start, 0.0)
    result = []
    for gap, depth in moves:
        now += gap
        decision = decide(p, current, depth, history, now)
        result.append(Step(now, current, depth, decision))
        history, current = decision.history, decision.desired
    return result


@settings(max_examples=300)
@given(policies(), st.integers(0, 80), steps)
def test_never_outside_the_bounds(
    p: Policy, start: int, moves: list[tuple[float, float | None]]
) -> None:
    for step in simulate(p, start, moves):
        if step.depth is not None:
            assert p.min_replicas <= step.decision.desired <= p.max_replicas


@settings(max_examples=300)
@given(policies(), st.data(), steps)
def test_never_more_than_the_step_limits(
    p: Policy, data: st.DataObject, moves: list[tuple[float, float | None]]
) -> None:
    start = data.draw(st.integers(p.min_replicas, p.max_replicas))
    for step in simulate(p, start, moves):
        change = step.decision.desired - step.current
        assert -p.scale_down.max_step <= change <= p.scale_up.max_step
    # Within one period, the steps add up to at most one step's worth.
    trace = simulate(p, start, moves)
    for i, first in enumerate(trace):
        window = [s for s in trace[i:] if s.now - first.now < p.period]
        added = sum(max(0, s.decision.desired - s.current) for s in window)
        removed = sum(max(0, s.current - s.decision.desired) for s in window)
        assert added <= p.scale_up.max_step
        assert removed <= p.scale_down.max_step


def with_window(
    p: Policy, start: int, moves: list[tuple[float, float | None]]
) -> Iterator[tuple[Step, list[tuple[float, int]]]]:
    """Every step of a run, with the (bounded) recommendations made until then."""
    made = [(0.0, start)]  # the starting history counts as a recommendation
    for step in simulate(p, start, moves):
        if step.decision.recommendation is not None:
            made.append(
                (step.now, clamp(step.decision.recommendation, p.min_replicas, p.max_replicas))
            )
        yield step, made


@settings(max_examples=300)
@given(policies(), st.data(), steps)
def test_no_scale_down_below_a_recommendation_of_the_window(
    p: Policy, data: st.DataObject, moves: list[tuple[float, float | None]]
) -> None:
    start = data.draw(st.integers(p.min_replicas, p.max_replicas))
    window = p.scale_down.stabilization_window
    for step, made in with_window(p, start, moves):
        if step.decision.desired < step.current:
            assert all(step.decision.desired >= r for at, r in made if step.now - at <= window)


@settings(max_examples=300)
@given(policies(), st.data(), steps)
def test_no_scale_up_above_a_recommendation_of_the_window(
    p: Policy, data: st.DataObject, moves: list[tuple[float, float | None]]
) -> None:
    """The mirror of the above: a spike shorter than the scale-up window adds no pods."""
    start = data.draw(st.integers(p.min_replicas, p.max_replicas))
    window = p.scale_up.stabilization_window
    for step, made in with_window(p, start, moves):
        if step.decision.desired > step.current:
            assert all(step.decision.desired <= r for at, r in made if step.now - at <= window)


@settings(max_examples=300)
@given(policies(), st.data(), steps)
def test_a_sustained_demand_is_met_once_the_window_and_steps_allow(
    p: Policy, data: st.DataObject, moves: list[tuple[float, float | None]]
) -> None:
    """After any trace, a depth held steady long enough brings the size to its bounded
    recommendation: stabilization and rate limits delay scaling, they never stop it."""
    start = data.draw(st.integers(p.min_replicas, p.max_replicas))
    trace = simulate(p, start, moves)
    now = trace[-1].now
    current, history = trace[-1].decision.desired, trace[-1].decision.history
    depth = data.draw(st.integers(0, 10**6))
    wanted = clamp(recommend(depth, p.target_per_replica), p.min_replicas, p.max_replicas)
    window = max(p.scale_up.stabilization_window, p.scale_down.stabilization_window)
    polls = int(window / p.period) + 2 + abs(wanted - current)
    for _ in range(polls):
        now += p.period
        decision = decide(p, current, depth, history, now)
        current, history = decision.desired, decision.history
    assert current == wanted


@settings(max_examples=300)
@given(policies(paused=None), st.data(), depths, st.floats(0, 1000))
def test_idempotent(p: Policy, data: st.DataObject, depth: float | None, now: float) -> None:
    current = data.draw(st.integers(0, 80))
    history = History.starting(data.draw(st.integers(0, 80)), max(0.0, now - 5))
    once = decide(p, current, depth, history, now)
    assert decide(p, current, depth, history, now) == once
    twice = decide(p, once.desired, depth, once.history, now)
    assert twice.desired == once.desired


@given(policies(paused=True), st.integers(0, 80), depths, st.floats(0, 1000))
def test_paused_never_moves(p: Policy, current: int, depth: float | None, now: float) -> None:
    history = History.starting(current, 0)
    decision = decide(p, current, depth, history, now)
    assert decision.desired == current
    assert decision.history == history


@given(policies(), st.integers(0, 80), st.floats(0, 1000))
def test_unreadable_metric_never_moves(p: Policy, current: int, now: float) -> None:
    history = History.starting(current, 0)
    decision = decide(p, current, None, history, now)
    assert decision.desired == current
    assert decision.history == history
