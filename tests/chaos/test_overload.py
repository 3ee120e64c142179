"""Three times the sustainable click rate: polite answers, a bounded queue and memory, a drain."""

from __future__ import annotations

from pathlib import Path

import pytest

from .overload import MAX_DEPTH, run_overload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_three_times_the_sustainable_rate_degrades_politely(tmp_path: Path) -> None:
    report = await run_overload(tmp_path, duration=15)
    print("\n" + report.summary())
    details = "\n".join([report.summary(), *report.failures])
    assert report.failures == [], details
    statuses = {label.split()[0] for label in report.answers}
    assert statuses <= {"200", "202", "429", "503"}, details
    assert "503" in statuses, details  # the queue's bound answered
    assert report.missing_retry_after == 0, details
    assert report.max_depth <= MAX_DEPTH, details
    assert report.completed == report.accepted, details
