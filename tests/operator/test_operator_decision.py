"""The scaling decision, without a cluster: examples, then properties over random histories."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_mine.operator.decision import (
    LAG_TOLERANCE,
    Decision,
    Fallback,
    History,
    Limit,
    Observation,
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
    **extra: Any,
) -> Policy:
    return Policy(min_replicas, max_replicas, target, up, down, period, paused, **extra)


# -- examples ---------------------------------------------------------------------------------


def test_recommendation_is_the_ceiling_of_depth_over_target() -> None:
    assert recommend(0, 500) == 0
    assert recommend(1, 500) == 1
    assert recommend(500, 500) == 1
    assert recommend(501, 500) == 2
    assert recommend(-10, 500) == 0


def test_scales_up_at_most_max_step_per_period() -> None:
    first = decide(policy(), 1, Observation(5000), History(), now=0)
    assert (first.desired, first.recommendation, first.limit) == (5, 10, Limit.SCALE_UP_LIMIT)
    # Deciding again at the same instant adds nothing: the period's budget is spent.
    again = decide(policy(), first.desired, Observation(5000), first.history, now=0)
    assert again.desired == 5
    # One period later, the next step.
    later = decide(policy(), 5, Observation(5000), again.history, now=5)
    assert later.desired == 9
    last = decide(policy(), 9, Observation(5000), later.history, now=10)
    assert (last.desired, last.limit) == (10, Limit.NONE)


def test_scale_down_waits_for_the_window_then_steps_once_per_window() -> None:
    p = policy(down=StepRule(60, 2))
    high = decide(p, 1, Observation(4000), History(), now=0)
    assert high.desired == 5
    history = high.history
    for now in (5, 30, 59.9):
        held = decide(p, 5, Observation(0), history, now=now)
        assert held.desired == 5, f"scaled down at t={now}, inside the window"
        history = held.history
    # The t=0 recommendation of 8 replicas (bounded) leaves the window after 60 s.
    down = decide(p, 5, Observation(0), history, now=61)
    assert (down.desired, down.limit) == (3, Limit.SCALE_DOWN_LIMIT)
    # The next scale-down waits a whole window after this one.
    for now in (66, 100, 120):
        held = decide(p, 3, Observation(0), down.history, now=now)
        assert held.desired == 3, f"a second scale-down at t={now}"
        assert "held: the last scale-down was" in held.reason
    assert decide(p, 3, Observation(0), held.history, now=121).desired == 1


def test_scale_down_without_a_step_limit_is_one_step() -> None:
    p = policy(down=StepRule(60, None))
    high = decide(p, 1, Observation(10_000), History(), now=0)
    assert high.desired == 5  # scale-up is still limited to 4 a period
    down = decide(p, 5, Observation(0), high.history, now=61)
    assert (down.desired, down.limit) == (1, Limit.TOO_FEW)


def test_a_falling_load_sheds_pods_once_per_window() -> None:
    """A ramp down: the HPA would follow it every period after the window, this holds."""
    p = policy(up=StepRule(0, None), down=StepRule(60, None))
    history, current, downs = History(), 1, []
    for second in range(0, 600, 5):
        depth = max(0, 10_000 - 20 * second)  # 20 replicas' worth, falling to 0 at t=500
        decision = decide(p, current, Observation(depth), history, now=second)
        if decision.desired < current:
            downs.append(second)
        history, current = decision.history, decision.desired
    assert current == 1
    assert all(b - a >= 60 for a, b in itertools.pairwise(downs)), downs
    assert len(downs) <= 600 // 60


def test_bounds_win_over_the_recommendation() -> None:
    p = policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100))
    assert decide(p, 2, Observation(10**9), History(), now=0).desired == 6
    assert decide(p, 2, Observation(10**9), History(), now=0).limit is Limit.TOO_MANY
    low = decide(p, 2, Observation(0), History(), now=0)
    assert (low.desired, low.limit) == (2, Limit.TOO_FEW)


def test_current_outside_the_bounds_is_brought_back() -> None:
    p = policy(min_replicas=2, max_replicas=6)
    assert decide(p, 0, Observation(0), History(), now=0).desired == 2
    assert decide(p, 30, Observation(10**6), History(), now=0).desired == 6


def test_paused_changes_nothing() -> None:
    history = History((Recommendation(0, 7),))
    decision = decide(policy(paused=True), 3, Observation(10**6), history, now=1)
    assert decision == Decision(3, 3, None, Limit.NONE, history, "paused", history)


@pytest.mark.parametrize("depth", [None, float("nan"), float("inf")])
def test_unreadable_metric_changes_nothing(depth: float | None) -> None:
    history = History((Recommendation(0, 7),))
    decision = decide(policy(), 30, Observation(depth), history, now=1)
    failed = History((Recommendation(0, 7),), failures=1)
    assert decision == Decision(
        30, 30, None, Limit.NONE, failed, "queue depth unavailable", history
    )


def test_reasons_say_what_bounded_limited_or_held_the_size() -> None:
    plain = decide(policy(), 1, Observation(1000), History(), now=0)
    assert (plain.current, plain.desired, plain.limit) == (1, 2, Limit.NONE)
    assert plain.reason == "queue depth 1000 at 500 per replica needs 2"
    bounded = decide(
        policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100)),
        2,
        Observation(1e9),
        History(),
        0,
    )
    assert bounded.reason == (
        "queue depth 1e+09 at 500 per replica needs 2000000, bounded by maxReplicas 6"
    )
    limited = decide(policy(), 1, Observation(5000), History(), now=0)
    assert (
        limited.reason
        == "queue depth 5000 at 500 per replica needs 10, limited to 5 by maxStepPods"
    )
    held = decide(policy(up=StepRule(30, 4)), 2, Observation(5000), History.starting(2, 0), now=10)
    assert held.reason == (
        "queue depth 5000 at 500 per replica needs 10, stabilized at 2 by the window"
    )
    history = History((Recommendation(0, 4),))
    stabilized = decide(policy(up=StepRule(30, 100)), 2, Observation(5000), history, now=10)
    assert stabilized.desired == 4
    assert stabilized.reason == (
        "queue depth 5000 at 500 per replica needs 10, stabilized at 4 by the window"
    )
    down = decide(policy(down=StepRule(0, 1)), 5, Observation(0), History(), now=0)
    assert (down.desired, down.limit) == (4, Limit.SCALE_DOWN_LIMIT)
    assert down.reason == "queue depth 0 at 500 per replica needs 0, limited to 4 by maxStepPods"


def test_a_recommendation_at_a_bound_is_not_limited() -> None:
    p = policy(min_replicas=2, max_replicas=6, up=StepRule(0, 100), down=StepRule(0, 100))
    # 3000 needs 6, the maximum; 1000 needs 2, the minimum.
    assert decide(p, 2, Observation(3000), History(), now=0).limit is Limit.NONE
    assert decide(p, 6, Observation(1000), History(), now=0).limit is Limit.NONE
    assert decide(p, 2, Observation(3001), History(), now=0).limit is Limit.TOO_MANY
    assert decide(p, 6, Observation(500), History(), now=0).limit is Limit.TOO_FEW
    step = decide(policy(down=StepRule(0, 3)), 5, Observation(1000), History(), now=0)
    assert (step.desired, step.limit) == (2, Limit.NONE), "a scale-down within its step"


def test_the_step_budget_counts_each_direction_apart() -> None:
    """A scale-down in a period leaves the whole scale-up step, and the other way round."""
    p = policy(up=StepRule(0, 2), down=StepRule(0, 2), period=100)
    down = decide(p, 10, Observation(4000), History(), now=0)  # needs 8: two down
    assert down.desired == 8
    # Needs 20: two up, the removal not counted.
    up = decide(p, 8, Observation(10_000), down.history, now=1)
    assert up.desired == 10
    again = decide(p, 10, Observation(10_000), up.history, now=2)
    assert again.desired == 10, "the up step of this period is spent"
    up_first = decide(p, 10, Observation(6000), History(), now=0)  # needs 12: two up
    assert up_first.desired == 12
    then_down = decide(p, 12, Observation(0), up_first.history, now=1)
    assert then_down.desired == 10
    # Needs 4: the down step of this period is spent.
    down_again = decide(p, 8, Observation(1600), down.history, now=1)
    assert down_again.desired == 8


def test_only_the_failed_rescale_is_given_back() -> None:
    p = policy(up=StepRule(0, 2), down=StepRule(0, 2), period=100)
    down = decide(p, 10, Observation(4000), History(), now=0)
    up = decide(p, 8, Observation(10_000), down.history, now=1)
    assert up.history.rescales == (Rescale(0, 10, 8), Rescale(1, 8, 10))
    assert after(up, scaled=False).rescales == (Rescale(0, 10, 8),)


def test_a_failed_rescale_does_not_spend_the_step_budget() -> None:
    first = decide(policy(), 1, Observation(5000), History(), now=0)
    kept = after(first, scaled=False)
    assert kept.rescales == ()
    assert kept.recommendations == first.history.recommendations
    assert decide(policy(), 1, Observation(5000), kept, now=0).desired == 5
    assert after(first, scaled=True) == first.history


def test_a_failed_scale_down_does_not_hold_off_the_next_one() -> None:
    p = policy(down=StepRule(60, 1))
    history = History(last_scale_down=10)
    down = decide(p, 5, Observation(0), history, now=100)
    assert (down.desired, down.history.last_scale_down) == (4, 100)
    kept = after(down, scaled=False)
    assert kept.last_scale_down == 10
    assert decide(p, 5, Observation(0), kept, now=105).desired == 4
    # The scale-down of t=10 still counts: a window of 100 s holds until t=110.
    longer = policy(down=StepRule(100, 1))
    held = decide(longer, 5, Observation(0), kept, now=105)
    assert held.desired == 5
    assert held.reason == (
        "queue depth 0 at 500 per replica needs 0, held: the last scale-down was 95s ago, "
        "bounded by minReplicas 1"
    )


def test_staying_put_after_a_scale_down_is_no_hold() -> None:
    p = policy(down=StepRule(60, 1))
    stay = decide(p, 4, Observation(2000), History(last_scale_down=90), now=100)
    assert stay.desired == 4
    assert stay.reason == "queue depth 2000 at 500 per replica needs 4"


def test_starting_history_holds_off_scale_down_for_a_window() -> None:
    p = policy(down=StepRule(300, 1))
    history = History.starting(10, now=1000)
    assert decide(p, 10, Observation(0), history, now=1200).desired == 10
    assert decide(p, 10, Observation(0), history, now=1301).desired == 9


def test_starting_history_holds_off_zero_for_a_cooldown_unless_started_at_zero() -> None:
    p = policy(min_replicas=0, down=StepRule(0, None), cooldown=300)
    history = History.starting(3, now=1000)
    kept = decide(p, 3, Observation(0), history, now=1010)
    assert kept.desired == 1
    assert kept.reason == (
        "queue depth 0 at 500 per replica needs 0, kept at 1 or more until the cooldown ends"
    )
    assert decide(p, 3, Observation(0), history, now=1300).desired == 0
    one = decide(p, 1, Observation(0), History.starting(1, now=1000), now=1010)
    assert one.desired == 1
    # Started at zero, no activity was seen: replicas added by hand go at once.
    woken_by_hand = decide(p, 2, Observation(0), History.starting(0, now=0), now=10)
    assert woken_by_hand.desired == 0


def test_scale_up_waits_until_the_whole_window_asks_for_more() -> None:
    p = policy(up=StepRule(30, 100), down=StepRule(0, 100))
    history = History.starting(2, now=0)
    spike = decide(p, 2, Observation(5000), history, now=10)  # 10 replicas asked for, 2 at t=0
    assert (spike.desired, spike.recommendation) == (2, 10)
    assert "stabilized at 2 by the window" in spike.reason
    # 4 now: the lowest of the window rules.
    dip = decide(p, 2, Observation(2000), spike.history, now=20)
    assert dip.desired == 2
    # t=0 leaves the window: the lowest of 10 (t=10), 4 (t=20) and 10 (t=31) is 4.
    partly = decide(p, 2, Observation(5000), dip.history, now=31)
    assert (partly.desired, partly.limit) == (4, Limit.NONE)
    assert "stabilized at 4" in partly.reason
    # t=20 leaves it too: every recommendation of the last 30 s asks for 10.
    full = decide(p, 4, Observation(5000), partly.history, now=51)
    assert full.desired == 10


def test_a_recommendation_as_old_as_its_window_no_longer_counts() -> None:
    # A scale-up window of 30 s (the scale-down's 300 s keeps t=0 in the history).
    p = policy(up=StepRule(30, None))
    history = History.starting(2, now=0)
    assert decide(p, 2, Observation(5000), history, now=29.9).desired == 2
    assert decide(p, 2, Observation(5000), history, now=30).desired == 10
    # A scale-down window of 60 s, shorter than the scale-up's 120 s.
    p = policy(up=StepRule(120, None), down=StepRule(60, None))
    history = History.starting(5, now=0)
    assert decide(p, 5, Observation(0), history, now=59.9).desired == 5
    assert decide(p, 5, Observation(0), history, now=60).desired == 1
    # The history forgets a recommendation once it is as old as the longer window.
    p = policy(up=StepRule(30, None), down=StepRule(60, None))
    kept = decide(p, 5, Observation(2500), history, now=59.9).history.recommendations
    assert kept == (Recommendation(0, 5), Recommendation(59.9, 5))
    forgotten = decide(p, 5, Observation(2500), history, now=60).history.recommendations
    assert forgotten == (Recommendation(60, 5),)


def test_a_brief_spike_inside_the_scale_up_window_adds_no_pods() -> None:
    p = policy(up=StepRule(60, 4))
    history = History.starting(3, now=0)
    current = 3
    for now, depth in [(5, 1500), (10, 10_000), (15, 1500), (20, 1500), (65, 1500), (70, 1500)]:
        decision = decide(p, current, Observation(depth), history, now)
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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"target_drain_seconds": 0}, "target_drain_seconds must be positive, got 0"),
        ({"target_lag_seconds": -1}, "target_lag_seconds must be positive, got -1"),
        ({"activation": -1}, "activation and cooldown must not be negative"),
        ({"cooldown": -1}, "activation and cooldown must not be negative"),
        ({"fallback": Fallback(0, 1)}, "fallback.failureThreshold must be at least 1"),
    ],
)
def test_policy_rejects_negative_targets_times_and_thresholds(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        policy(**extra)


def test_a_backlog_wakes_a_target_at_zero_at_once() -> None:
    p = policy(min_replicas=0, activation=50)
    quiet = decide(p, 0, Observation(50), History.starting(0, 0), now=5)
    assert quiet.desired == 0
    assert quiet.reason == (
        "queue depth 50 at 500 per replica needs 1, not above the activation threshold 50"
    )
    woken = decide(p, 0, Observation(51), quiet.history, now=10)
    assert woken.desired == 1
    assert decide(p, 0, Observation(1800), quiet.history, now=10).desired == 4


def test_back_to_zero_after_the_cooldown_in_one_step() -> None:
    """KEDA's timing: zero once the queue has been quiet for cooldownPeriod, not a window later."""
    p = policy(min_replicas=0, down=StepRule(300, None), cooldown=300)
    busy = decide(p, 0, Observation(2000), History.starting(0, -1), now=0)
    assert busy.desired == 4
    history = busy.history
    for now in range(5, 300, 5):
        held = decide(p, 4, Observation(0), history, now=now)
        assert held.desired == 4, now
        history = held.history
    last = decide(p, 4, Observation(0), history, now=300)
    assert (last.desired, last.limit) == (0, Limit.NONE)
    assert "inactive for the cooldown of 300s" in last.reason


def test_zero_waits_for_the_cooldown_when_it_is_the_longer() -> None:
    p = policy(min_replicas=0, down=StepRule(60, None), cooldown=600)
    history = decide(p, 0, Observation(500), History.starting(0, -1), now=0).history
    down = decide(p, 1, Observation(0), history, now=300)
    assert down.desired == 1
    assert "kept at 1 or more until the cooldown ends" in down.reason
    assert decide(p, 1, Observation(0), down.history, now=599).desired == 1
    assert decide(p, 1, Observation(0), down.history, now=600).desired == 0


def test_zero_waits_for_the_scale_down_window_when_it_is_the_longer() -> None:
    p = policy(min_replicas=0, down=StepRule(600, None), cooldown=60)
    history = decide(p, 0, Observation(1000), History.starting(0, -1), now=0).history
    # The cooldown has passed, but the window still holds the 2 replicas of t=0.
    quiet = decide(p, 2, Observation(0), history, now=300)
    assert quiet.desired == 2
    assert decide(p, 2, Observation(0), quiet.history, now=600).desired == 0


def test_minimum_one_ignores_activation() -> None:
    p = policy(min_replicas=1, activation=1000)
    assert decide(p, 1, Observation(1500), History(), now=0).desired == 3


def test_drain_time_target_learns_the_capacity_while_every_replica_is_busy() -> None:
    p = policy(target=100, target_drain_seconds=5, up=StepRule(0, None))
    # 150 waiting for 3 replicas is under the target per replica: they may be idle at times,
    # so their apply rate says nothing of what they can do. The depth target alone.
    idle = decide(p, 3, Observation(150, ready=3, drain_rate=20), History(), now=0)
    assert (idle.recommendation, idle.history.capacity) == (2, ())
    # 300 waiting keeps the 3 busy: 150 clicks/s is 50 per replica. 150 arrive each second and
    # draining 300 within 5 s takes 60 more: 210 / 50 -> 5 replicas, where the depth says 3.
    busy = decide(p, 3, Observation(300, ready=3, drain_rate=150), History(), now=0)
    assert busy.history.capacity == ((0, 50.0),)
    assert (busy.desired, busy.recommendation) == (5, 5)
    assert busy.reason.startswith(
        "arrivals 150/s and queue depth 300 drained within 5s at 50/s per replica need 5"
    )
    # 5 s later the depth has grown by 200: 40/s more arrive than are applied (190 + 100) / 50.
    growing = decide(p, 5, Observation(500, ready=3, drain_rate=150), busy.history, now=5)
    assert "arrivals 190/s and queue depth 500" in growing.reason
    assert growing.recommendation == 6


def test_drain_time_target_keeps_up_with_the_arrivals_when_the_queue_is_empty() -> None:
    """Where the depth alone would shed the replicas that keep the queue empty."""
    p = policy(target=100, target_drain_seconds=30, up=StepRule(0, None), down=StepRule(0, None))
    history = decide(p, 8, Observation(800, ready=8, drain_rate=400), History(), now=0).history
    assert history.capacity == ((0, 50.0),)
    steady = decide(p, 8, Observation(0, ready=8, drain_rate=300), history, now=5)
    # 300 clicks/s arrive (the queue went 800 -> 0 in 5 s while 300/s were applied: the slope
    # says 160/s left, arrivals = max(0, 300 - 160) = 140/s): 140 / 50 -> 3.
    assert steady.desired == 3
    later = decide(p, 3, Observation(0, ready=3, drain_rate=300), steady.history, now=70)
    assert (later.desired, later.recommendation) == (6, 6)  # 300 / 50, the depth says 0
    no_rate = decide(p, 3, Observation(0, ready=3, drain_rate=None), steady.history, now=70)
    assert (no_rate.recommendation, no_rate.desired) == (0, 1)  # the depth alone; minReplicas


def test_the_depths_slope_is_taken_over_the_time_between_readings() -> None:
    p = policy(target=100, target_drain_seconds=5, up=StepRule(0, None))
    history = History(capacity=((1000, 50.0),), depths=((1000, 300.0),))
    # 200 more waiting after 5 s: 40/s arrive beyond the 150/s applied; (190 + 100) / 50.
    growing = decide(p, 3, Observation(500, ready=3, drain_rate=150), history, now=1005)
    assert growing.reason.startswith("arrivals 190/s and queue depth 500")
    assert growing.recommendation == 6


def test_no_arrivals_and_no_backlog_ask_for_nothing() -> None:
    p = policy(target=100, target_drain_seconds=30)
    idle = decide(p, 1, Observation(0, ready=1, drain_rate=0), History(capacity=((0, 50.0),)), 5)
    assert idle.recommendation == 0
    assert idle.reason.startswith("queue depth 0 at 100 per replica needs 0")


def test_capacity_is_forgotten_after_ten_minutes() -> None:
    p = policy(target=100, target_drain_seconds=30)
    history = decide(p, 2, Observation(400, ready=2, drain_rate=100), History(), now=0).history
    assert decide(p, 2, Observation(0, ready=2, drain_rate=40), history, now=600).history.capacity
    assert not decide(
        p, 2, Observation(0, ready=2, drain_rate=40), history, now=601
    ).history.capacity


def test_capacity_and_depths_are_kept_for_their_spans_counted_back_from_now() -> None:
    p = policy(target=100, target_drain_seconds=30)
    history = History(capacity=((1000, 40.0),), depths=((1540, 5000.0),))
    kept = decide(p, 2, Observation(0, ready=2, drain_rate=40), history, now=1600).history
    assert kept.capacity == ((1000, 40.0),)
    assert kept.depths == ((1540, 5000.0), (1600, 0))
    gone = decide(p, 2, Observation(0, ready=2, drain_rate=40), history, now=1601).history
    assert gone.capacity == ()
    assert gone.depths == ((1601, 0),)


def test_capacity_is_per_ready_replica_even_a_single_one() -> None:
    p = policy(target=100, target_drain_seconds=30)
    # 3 replicas, 2 of them ready: 120 clicks/s is 60 per ready replica.
    three = decide(p, 3, Observation(1000, ready=2, drain_rate=120), History(), now=0)
    assert three.history.capacity == ((0, 60.0),)
    one = decide(p, 1, Observation(100, ready=1, drain_rate=45), History(), now=0)
    assert one.history.capacity == ((0, 45.0),)
    # Without a ready count, the current replicas are taken as ready.
    unknown = decide(p, 3, Observation(1000, drain_rate=120), History(), now=0)
    assert unknown.history.capacity == ((0, 40.0),)
    # None ready: nothing is measured.
    none = decide(p, 3, Observation(1000, ready=0, drain_rate=120), History(), now=0)
    assert none.history.capacity == ()


def test_lag_only_ever_asks_for_more() -> None:
    p = policy(target=1000, target_lag_seconds=10, up=StepRule(0, None))
    late = decide(p, 2, Observation(100, ready=2, lag=30), History(), now=0)
    assert late.desired == 6
    assert "lag 30s over the target 10s needs 6" in late.reason
    # The depth asks for as many: the reason names the depth.
    same = decide(p, 2, Observation(3000, ready=2, lag=15), History(), now=0)
    assert (same.recommendation, same.reason) == (3, "queue depth 3000 at 1000 per replica needs 3")
    within_tolerance = decide(p, 2, Observation(100, ready=2, lag=10.9), History(), now=0)
    assert (within_tolerance.desired, within_tolerance.recommendation) == (1, 1)


def test_lag_scales_the_ready_replicas_from_just_past_the_tolerance() -> None:
    p = policy(target=1000, target_lag_seconds=10, up=StepRule(0, None))
    # 4 replicas, 2 of them ready: the 2 that work fall behind 1.5 times, 3 would keep up.
    late = decide(p, 4, Observation(100, ready=2, lag=15), History(), now=0)
    assert late.recommendation == 3
    assert late.reason == "lag 15s over the target 10s needs 3"
    # Exactly at the tolerance is within it; just past it asks for more.
    edge = 10 * (1 + LAG_TOLERANCE)
    at = decide(p, 2, Observation(100, ready=2, lag=edge), History(), now=0)
    assert (at.recommendation, at.desired) == (1, 1)
    past = decide(p, 2, Observation(100, ready=2, lag=edge * 1.001), History(), now=0)
    assert (past.recommendation, past.desired) == (3, 3)


def test_a_late_queue_without_ready_replicas_asks_for_one() -> None:
    p = policy(min_replicas=0, target=1000, target_lag_seconds=10, up=StepRule(0, None))
    woken = decide(p, 0, Observation(100, ready=0, lag=30), History(), now=0)
    assert (woken.recommendation, woken.desired) == (1, 1)


def test_the_reason_names_the_depth_when_the_drain_time_asks_for_no_more() -> None:
    p = policy(target=100, target_drain_seconds=5, up=StepRule(0, None))
    # Capacity 50 per replica; 100 waiting, 100/s applied: (100 + 100 / 5) / 50 -> 3, as the
    # depth's 300 / 100.
    history = History(capacity=((0, 50.0),))
    same = decide(p, 3, Observation(300, ready=3, drain_rate=80), history, now=0)
    assert same.recommendation == 3
    assert same.reason == "queue depth 300 at 100 per replica needs 3"


def test_capacity_below_one_click_per_second_is_measured() -> None:
    p = policy(target=100, target_drain_seconds=30)
    slow = decide(p, 2, Observation(400, ready=2, drain_rate=1), History(), now=0)
    assert slow.history.capacity == ((0, 0.5),)
    stopped = decide(p, 2, Observation(400, ready=2, drain_rate=0), History(), now=0)
    assert stopped.history.capacity == ()


def test_fallback_after_failures_in_a_row() -> None:
    p = policy(fallback=Fallback(failure_threshold=3, replicas=8), up=StepRule(0, None))
    history = History.starting(2, 0)
    for now in (5, 10):
        decision = decide(p, 2, Observation(None), history, now=now)
        assert (decision.desired, decision.fallback) == (2, False)
        history = decision.history
    fallen = decide(p, 2, Observation(None), history, now=15)
    assert (fallen.desired, fallen.fallback, fallen.recommendation) == (8, True, 8)
    assert "queue depth unavailable 3 times in a row: fallback" in fallen.reason
    # Its rescale failing gives back the step it took.
    assert fallen.before == history
    assert after(fallen, scaled=False).rescales == ()
    # A reading resets the count; the fallback's 8 stays in the scale-down window.
    back = decide(p, 8, Observation(500), fallen.history, now=20)
    assert (back.desired, back.history.failures, back.fallback) == (8, 0, False)
    # A success in between starts the count again.
    again = decide(p, 8, Observation(None), back.history, now=25)
    assert (again.desired, again.fallback) == (8, False)


def test_a_fallback_to_one_replica_keeps_one() -> None:
    p = policy(min_replicas=0, fallback=Fallback(1, 1), down=StepRule(0, None))
    fallen = decide(p, 3, Observation(None), History(), now=0)
    assert (fallen.desired, fallen.fallback) == (1, True)


def test_fallback_to_fewer_replicas_waits_for_the_window() -> None:
    p = policy(fallback=Fallback(1, 2), down=StepRule(300, None))
    history = History.starting(10, 0)
    assert decide(p, 10, Observation(None), history, now=5).desired == 10
    assert decide(p, 10, Observation(None), history, now=301).desired == 2


# -- properties -------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn, paused: bool | None = False) -> Policy:
    low = draw(st.integers(0, 30))
    high = draw(st.integers(max(low, 1), 60))
    steps = st.one_of(st.none(), st.integers(1, 10))
    fallback = st.builds(Fallback, st.integers(1, 5), st.integers(0, 80))
    return Policy(
        min_replicas=low,
        max_replicas=high,
        target_per_replica=draw(st.integers(1, 1000)),
        scale_up=StepRule(draw(st.integers(0, 120)), draw(steps)),
        scale_down=StepRule(draw(st.integers(0, 600)), draw(steps)),
        period=draw(st.integers(1, 30)),
        paused=draw(st.booleans()) if paused is None else paused,
        target_drain_seconds=draw(st.one_of(st.none(), st.integers(1, 600))),
        target_lag_seconds=draw(st.one_of(st.none(), st.integers(1, 600))),
        activation=draw(st.integers(0, 100)),
        cooldown=draw(st.integers(0, 600)),
        fallback=draw(st.one_of(st.none(), fallback)),
    )


observations = st.builds(
    Observation,
    st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False), st.integers(0, 10**6)),
    st.one_of(st.none(), st.integers(0, 80)),
    st.one_of(st.none(), st.floats(0, 1e5)),
    st.one_of(st.none(), st.floats(0, 3600)),
)
steps = st.lists(st.tuples(st.floats(0, 90), observations), min_size=1, max_size=40)


@dataclass
class Step:
    now: float
    current: int
    observed: Observation
    decision: Decision


def simulate(p: Policy, start: int, moves: list[tuple[float, Observation]]) -> list[Step]:
    """Apply every decision, as the operator does, over a run of polls."""
    now, current, history = 0.0, start, History.starting(start, 0.0)
    result = []
    for gap, observed in moves:
        now += gap
        decision = decide(p, current, observed, history, now)
        result.append(Step(now, current, observed, decision))
        history, current = decision.history, decision.desired
    return result


@st.composite
def runs(draw: st.DrawFn) -> tuple[Policy, list[Step]]:
    """A policy and the decisions it makes over random polls, from a size within bounds."""
    p = draw(policies())
    start = draw(st.integers(p.min_replicas, p.max_replicas))
    return p, simulate(p, start, draw(steps))


def limit(rule: StepRule) -> float:
    return math.inf if rule.max_step is None else rule.max_step


@settings(max_examples=200)
@given(policies(), st.integers(0, 80), steps)
def test_never_outside_the_bounds(
    p: Policy, start: int, moves: list[tuple[float, Observation]]
) -> None:
    for step in simulate(p, start, moves):
        if step.decision.recommendation is not None:
            assert p.min_replicas <= step.decision.desired <= p.max_replicas


@settings(max_examples=200)
@given(runs())
def test_never_more_than_the_step_limits(run: tuple[Policy, list[Step]]) -> None:
    p, trace = run
    # Within one period, the steps add up to at most one step's worth.
    for i, first in enumerate(trace):
        window = [s for s in trace[i:] if s.now - first.now < p.period]
        added = sum(max(0, s.decision.desired - s.current) for s in window)
        removed = sum(max(0, s.current - s.decision.desired) for s in window)
        assert added <= limit(p.scale_up)
        assert removed <= limit(p.scale_down)


@settings(max_examples=200)
@given(runs())
def test_at_most_one_scale_down_per_window(run: tuple[Policy, list[Step]]) -> None:
    p, trace = run
    downs = [s.now for s in trace if s.decision.desired < s.current]
    for earlier, later in itertools.pairwise(downs):
        assert later - earlier >= p.scale_down.stabilization_window


@settings(max_examples=200)
@given(runs())
def test_no_scale_down_below_a_recommendation_of_the_window(run: tuple[Policy, list[Step]]) -> None:
    p, trace = run
    made = [(0.0, trace[0].current)]  # the starting history counts as a recommendation
    for step in trace:
        decision = step.decision
        if decision.recommendation is not None:
            made.append((step.now, clamp(decision.recommendation, p.min_replicas, p.max_replicas)))
        if decision.desired < step.current and decision.desired > 0:
            window = p.scale_down.stabilization_window
            assert all(decision.desired >= r for at, r in made if step.now - at < window)


@settings(max_examples=200)
@given(runs())
def test_no_scale_up_above_a_recommendation_of_the_window(run: tuple[Policy, list[Step]]) -> None:
    """The mirror of the above: a spike shorter than the scale-up window adds no pods."""
    p, trace = run
    made = [(0.0, trace[0].current)]
    for step in trace:
        decision = step.decision
        if decision.recommendation is not None:
            made.append((step.now, clamp(decision.recommendation, p.min_replicas, p.max_replicas)))
        if decision.desired > step.current:
            window = p.scale_up.stabilization_window
            assert all(decision.desired <= r for at, r in made if step.now - at < window)


@settings(max_examples=200)
@given(runs())
def test_zero_only_after_a_quiet_cooldown_and_woken_by_a_backlog(
    run: tuple[Policy, list[Step]],
) -> None:
    p, trace = run
    for i, step in enumerate(trace):
        if step.decision.desired == 0 < step.current:
            assert p.min_replicas == 0
            assert not step.decision.fallback or (p.fallback and p.fallback.replicas == 0)
            if not step.decision.fallback:
                # Nothing above the activation threshold within the cooldown, nor since start.
                quiet = [s for s in trace[: i + 1] if step.now - s.now < p.cooldown]
                assert all(
                    s.observed.depth is None or not s.observed.depth > p.activation for s in quiet
                )
                assert step.now >= p.cooldown
        depth = step.observed.depth
        immediate = p.scale_up.stabilization_window == 0  # else the window delays it
        if immediate and step.current == 0 and depth is not None and math.isfinite(depth):
            woken = depth > p.activation and p.max_replicas > 0
            assert (step.decision.desired > 0) is woken or p.min_replicas > 0


@settings(max_examples=200)
@given(policies(paused=None), st.data(), observations, st.floats(0, 1000))
def test_idempotent(p: Policy, data: st.DataObject, observed: Observation, now: float) -> None:
    current = data.draw(st.integers(0, 80))
    history = History.starting(data.draw(st.integers(0, 80)), max(0.0, now - 5))
    once = decide(p, current, observed, history, now)
    assert decide(p, current, observed, history, now) == once
    if observed.depth is not None and math.isfinite(observed.depth):
        twice = decide(p, once.desired, observed, once.history, now)
        assert twice.desired == once.desired


@given(policies(paused=True), st.integers(0, 80), observations, st.floats(0, 1000))
def test_paused_never_moves(p: Policy, current: int, observed: Observation, now: float) -> None:
    history = History.starting(current, 0)
    decision = decide(p, current, observed, history, now)
    assert decision.desired == current
    assert decision.history == history


@given(policies(), st.integers(0, 80), st.floats(0, 1000))
def test_unreadable_metric_never_moves_before_the_fallback(
    p: Policy, current: int, now: float
) -> None:
    history = History.starting(current, 0)
    decision = decide(p, current, Observation(None), history, now)
    if p.fallback is None or p.fallback.failure_threshold > 1:
        assert decision.desired == current
        assert decision.history == replace(history, failures=1)
    else:
        assert decision.fallback
