"""The chaos run's rules for the answers it sees: when a repeat's window began, and which
late answers are right."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from .load import (
    LATE_ANEW,
    LATE_NO_BALANCE,
    LATE_ORIGINAL,
    LATE_REPLAYED,
    LATE_SAME,
    late_verdict,
    window_start,
)

# Fixed times (parameters are made when the tests are collected, long before they run).
ACCEPTED = "2026-12-06T00:11:17.333+00:00"
APPLIED = "2026-12-06T00:11:17.392+00:00"
APPLIED_LATER = "2026-12-06T00:11:18.000+00:00"
RETAKEN = "2026-12-06T00:11:41.022+00:00"
AFTER_RETAKEN = "2026-12-06T00:11:45.000+00:00"


def iso(seconds_ago: float) -> str:
    """A time ``seconds_ago`` before now (for a test's body only)."""
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).isoformat(timespec="milliseconds")


def completed(accepted: str, applied: str, balance: int | None, duplicate: bool) -> dict[str, Any]:
    return {
        "idempotencyKey": "k1",
        "status": "completed",
        "clicks": 2,
        "acceptedAt": accepted,
        "result": {"reward": 6, "balance": balance, "appliedAt": applied, "duplicate": duplicate},
    }


def replay(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"Idempotent-Replayed": "true"})


def test_a_queued_click_s_window_begins_after_its_first_answer() -> None:
    body = {"idempotencyKey": "k1", "status": "queued", "clicks": 2, "acceptedAt": iso(30)}
    assert window_start(body, 1000.0) == 1000.0


def test_a_completed_replay_s_window_began_when_it_was_applied() -> None:
    body = completed(iso(30), iso(20), 126, False)
    assert window_start(body, 1000.0) == pytest.approx(980.0, abs=0.5)


def test_without_an_application_time_the_acceptance_bounds_the_window() -> None:
    body = completed(iso(30), iso(20), 126, False)
    body["result"]["appliedAt"] = None
    assert window_start(body, 1000.0) == pytest.approx(970.0, abs=0.5)


def test_late_answers_that_are_right() -> None:
    snapshot = completed(ACCEPTED, APPLIED, 126, False)
    assert late_verdict(httpx.Response(202, json={}), 2, snapshot) == LATE_ANEW
    assert late_verdict(replay(snapshot), 2, None) == LATE_REPLAYED
    assert late_verdict(replay(snapshot), 2, snapshot) == LATE_SAME
    gone = {**snapshot, "result": {**snapshot["result"], "balance": None}}
    assert late_verdict(replay(gone), 2, snapshot) == LATE_NO_BALANCE


def test_the_original_answers_for_a_click_that_was_a_duplicate_within_its_window() -> None:
    original = completed(ACCEPTED, APPLIED, 126, False)
    retaken = completed(RETAKEN, original["result"]["appliedAt"], 306, True)
    assert late_verdict(replay(original), 2, retaken) == LATE_ORIGINAL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reward", 9),
        ("appliedAt", APPLIED_LATER),
        ("duplicate", True),
        ("balance", 127),
    ],
)
def test_late_answers_that_are_wrong(field: str, value: Any) -> None:
    snapshot = completed(ACCEPTED, APPLIED, 126, False)
    wrong = {**snapshot, "result": {**snapshot["result"], field: value}}
    assert late_verdict(replay(wrong), 2, snapshot) is None


@pytest.mark.parametrize(
    "change",
    [
        {"acceptedAt": AFTER_RETAKEN},
        {"clicks": 3},
        {"result": {"reward": 9}},
        {"result": {"appliedAt": APPLIED_LATER}},
        {"result": {"duplicate": True}},
    ],
)
def test_an_answer_unlike_the_original_of_a_duplicate_is_wrong(change: dict[str, Any]) -> None:
    original = completed(ACCEPTED, APPLIED, 126, False)
    retaken = completed(RETAKEN, original["result"]["appliedAt"], 306, True)
    body = {**original, **change, "result": {**original["result"], **change.get("result", {})}}
    assert late_verdict(replay(body), body["clicks"], retaken) is None


def test_a_replay_without_its_header_or_of_other_clicks_is_wrong() -> None:
    snapshot = completed(ACCEPTED, APPLIED, 126, False)
    assert late_verdict(httpx.Response(200, json=snapshot), 2, snapshot) is None
    assert late_verdict(replay(snapshot), 3, snapshot) is None


def test_a_replay_of_the_click_taken_anew_by_the_repeat_counts_as_taken_anew() -> None:
    snapshot = completed(ACCEPTED, APPLIED, 126, False)
    queued = {"idempotencyKey": "k1", "status": "queued", "clicks": 2, "acceptedAt": RETAKEN}
    assert late_verdict(replay(queued), 2, snapshot) == LATE_ANEW
    duplicate = completed(RETAKEN, APPLIED, 306, True)
    assert late_verdict(replay(duplicate), 2, snapshot) == LATE_ANEW


@pytest.mark.parametrize(
    "change",
    [
        {"acceptedAt": ACCEPTED},  # not accepted after the answer within the window
        {"idempotencyKey": "k2"},
        {"result": {"reward": 9}},
        {"result": {"appliedAt": APPLIED_LATER}},
        {"result": {"duplicate": False}},
    ],
)
def test_an_answer_unlike_a_retake_is_wrong(change: dict[str, Any]) -> None:
    snapshot = completed(ACCEPTED, APPLIED, 126, False)
    retake = completed(RETAKEN, APPLIED, 306, True)
    body = {**retake, **change, "result": {**retake["result"], **change.get("result", {})}}
    assert late_verdict(replay(body), 2, snapshot) is None
    if "result" not in change:
        queued = {k: v for k, v in body.items() if k != "result"} | {"status": "queued"}
        assert late_verdict(replay(queued), 2, snapshot) is None
