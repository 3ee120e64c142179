"""The short chaos run (``python -m tests.chaos`` runs the long one): every kind of fault at
least once under a steady stream of clicks; nothing accepted is lost or counted twice, and a
repeat after the Redis window is answered from MongoDB as it was within it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .faults import KINDS
from .load import LATE_SAME
from .run import run_chaos

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.mark.timeout(900)
async def test_no_accepted_click_is_lost_or_doubled_while_everything_dies(tmp_path: Path) -> None:
    report = await run_chaos(
        tmp_path, duration=35, rate=40, fault_interval=2.5, seed=11, initial_users=10
    )
    print("\n" + report.summary())
    details = "\n".join([report.summary(), *report.failures[:30]])
    assert report.failures == [], details
    assert (report.verdict.lost, report.verdict.doubled) == (0, 0), details
    assert set(report.faults.injected) == set(KINDS), details
    assert report.verdict.accepted > 500, details
    assert report.ledger.repeats["replayed"] > 0, details
    # Repeats after the Redis window: during the faults, and all replayed once it is quiet.
    assert report.ledger.late["sent"] > 10, details
    assert report.final["sent"] > 100, details
    assert report.final[LATE_SAME] > 0, details


@pytest.mark.timeout(900)
async def test_two_shards_lose_and_double_nothing_with_faults_on_either(tmp_path: Path) -> None:
    """Users spread over two click shards, each with its own Redis and worker pod; the faults
    (a Redis SIGKILL among them) hit either shard."""
    report = await run_chaos(
        tmp_path, duration=50, rate=40, fault_interval=2, seed=12, initial_users=10, shards=2
    )
    print("\n" + report.summary())
    details = "\n".join([report.summary(), *report.failures[:30]])
    assert report.failures == [], details
    assert (report.verdict.lost, report.verdict.doubled) == (0, 0), details
    assert set(report.faults.redis_shards) == {0, 1}, details
    assert report.verdict.accepted > 500, details
    assert report.final["sent"] > 100, details
