"""The replayed autoscalers against what their documentation says they do (controllers.py)."""

from __future__ import annotations

from crypto_mine.operator.decision import Policy, StepRule

from .controllers import Hpa, Keda, Operator, ScalingPolicy, ScalingRules, View


def view(now: float, spec: int, depth: float) -> View:
    return View(now, spec, spec, depth)


def test_hpa_scales_by_the_ratio_outside_its_tolerance() -> None:
    hpa = Hpa(1, 100, target=100, up=ScalingRules(0, (ScalingPolicy("Percent", 1000, 15),)))
    # "if the current metric value is 200m, and the desired value is 100m, the number of
    # replicas will be doubled" (per pod here: 2000 waiting for 10 pods at 100 each).
    assert hpa.decide(view(0, 10, 2000)) == 20
    # Within the 0.1 tolerance: no change.
    assert Hpa(1, 100, target=100).decide(view(0, 10, 1090)) is None
    assert Hpa(1, 100, target=100).decide(view(0, 10, 1110)) == 12


def test_hpa_default_scale_up_is_the_larger_of_4_pods_and_100_percent_per_15_s() -> None:
    small, large = Hpa(1, 100, target=1), Hpa(1, 100, target=1)
    assert small.decide(view(0, 2, 10**6)) == 6  # 2 + 4 > 2 x 2
    assert large.decide(view(0, 10, 10**6)) == 20  # 2 x 10 > 10 + 4
    # The period's budget is spent: nothing more until 15 s after the first step.
    assert large.decide(view(10, 20, 10**6)) is None
    assert large.decide(view(15, 20, 10**6)) == 40


def test_hpa_default_scale_down_waits_300_s_then_goes_at_once() -> None:
    hpa = Hpa(1, 100, target=100)
    assert hpa.decide(view(0, 8, 800)) is None
    for now in range(15, 300, 15):
        assert hpa.decide(view(now, 8, 0)) is None, now
    assert hpa.decide(view(300, 8, 0)) == 1  # the t=0 recommendation is 300 s old: out


def test_hpa_down_policies_select_the_largest_change() -> None:
    """The documentation's example: 4 pods or 10 % per 60 s, whichever removes more."""
    rules = ScalingRules(0, (ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)))
    assert Hpa(1, 100, target=100, down=rules).decide(view(0, 80, 0)) == 72
    assert Hpa(1, 100, target=100, down=rules).decide(view(0, 20, 0)) == 16


def test_hpa_syncs_every_15_s() -> None:
    hpa = Hpa(1, 100, target=100)
    assert hpa.tick(view(0, 1, 500)) == 5
    assert hpa.tick(view(14.9, 5, 5000)) is None
    assert hpa.tick(view(15, 5, 5000)) == 10


def test_keda_activates_from_zero_at_its_polling_and_deactivates_after_the_cooldown() -> None:
    keda = Keda(max_replicas=10, target=100)
    assert keda.tick(view(0, 0, 0)) is None
    assert keda.tick(view(10, 0, 500)) is None  # between two polls (30 s apart)
    assert keda.tick(view(30, 0, 500)) == 1  # activation: KEDA itself, to 1
    assert keda.tick(view(31, 1, 500)) == 5  # then the HPA
    assert keda.tick(view(60, 5, 0)) is None  # inactive from here
    assert keda.tick(view(330, 5, 0)) is None  # the HPA's 300 s window holds the 5 of t=31
    assert keda.tick(view(346, 5, 0)) == 1  # the HPA's minimum is 1
    # The last poll that saw it active was t=30: 300 s later the next poll takes it to zero.
    assert keda.tick(view(359, 1, 0)) is None
    assert keda.tick(view(361, 1, 0)) == 0


def test_the_operator_replays_its_own_decision_every_poll() -> None:
    policy = Policy(1, 10, 100, StepRule(0, 4), StepRule(60, None), period=2)
    operator = Operator(policy)
    assert operator.tick(view(0, 1, 1000)) == 5
    assert operator.tick(view(1, 5, 1000)) is None  # between polls
    assert operator.tick(view(2, 5, 1000)) == 9
