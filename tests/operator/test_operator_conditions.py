"""Status conditions keep their transition time until their status flips."""

from __future__ import annotations

from crypto_mine.operator.conditions import Condition, changed, merge


def test_transition_time_moves_only_on_a_flip() -> None:
    first = merge([], [Condition("ScalingActive", True, "ValidMetricFound", "ok")], "T1")
    assert first == [
        {
            "type": "ScalingActive",
            "status": "True",
            "reason": "ValidMetricFound",
            "message": "ok",
            "lastTransitionTime": "T1",
        }
    ]
    same = merge(first, [Condition("ScalingActive", True, "ValidMetricFound", "still ok")], "T2")
    assert same[0]["lastTransitionTime"] == "T1"
    assert same[0]["message"] == "still ok"
    flipped = merge(same, [Condition("ScalingActive", False, "FailedGetMetric", "down")], "T3")
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_conditions_not_given_are_kept_in_a_fixed_order() -> None:
    stored = merge(
        [],
        [
            Condition("ScalingLimited", False, "DesiredWithinRange", ""),
            Condition("AbleToScale", True, "ReadyForNewScale", ""),
        ],
        "T1",
    )
    merged = merge(stored, [Condition("ScalingActive", False, "InvalidSpec", "bad")], "T2")
    assert [c["type"] for c in merged] == ["AbleToScale", "ScalingActive", "ScalingLimited"]


def test_changed_compares_status_and_reason() -> None:
    stored = merge([], [Condition("AbleToScale", False, "FailedGetScale", "a")], "T1")
    assert not changed(stored, Condition("AbleToScale", False, "FailedGetScale", "b"))
    assert changed(stored, Condition("AbleToScale", False, "FailedUpdateScale", "a"))
    assert changed(stored, Condition("AbleToScale", True, "FailedGetScale", "a"))
    assert changed(stored, Condition("ScalingActive", False, "FailedGetScale", "a"))
