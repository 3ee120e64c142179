"""The batch runner's edges: the outcome recording's latency, read on a clock the test moves."""

from __future__ import annotations

import pytest
import redis

from crypto_mine.pipeline import batches as batches_module
from crypto_mine.pipeline.ledger import Ledger

from .test_batches import completions, queued, runner_of


class Clock:
    """The runner's performance counter: each reading is the next of ``readings``."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def perf_counter(self) -> float:
        return self.readings.pop(0)


def test_the_outcome_latency_is_exactly_the_recording_time_in_milliseconds(
    redis_client: redis.Redis, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(100.0, 100.25)  # recording began, recording ended: 250 ms
    monkeypatch.setattr(batches_module, "time", clock)
    count, total = completions()
    result = runner_of(redis_client, ledger).run("b1", [queued(redis_client, "a")])
    after_count, after_total = completions()
    assert result.fresh == 1
    assert clock.readings == [], "one reading before the recording, one after"
    assert after_count == count + 1
    assert after_total - total == pytest.approx(250.0, abs=1e-6)
