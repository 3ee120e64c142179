"""The capacity model's arithmetic, on costs chosen so every number can be worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import capacity
from bench.capacity import API, MONGODB, REDIS, WORKER, Costs, Load, Replica, plan

COSTS = Costs(
    cpu_us={
        "click": {API: 100.0, WORKER: 50.0, REDIS: 20.0, MONGODB: 80.0, "all": 250.0},
        "click_status": {API: 60.0, WORKER: 0.0, REDIS: 10.0, MONGODB: 0.0},
        "balance": {API: 40.0, REDIS: 10.0},
    },
    documents_per_click=2.0,
)


def test_a_click_carries_its_share_of_the_reads() -> None:
    per_click = Load(1000, status_reads=0.5, balance_reads=0.25).per_click(COSTS)
    assert per_click == {API: 100 + 30 + 10, WORKER: 50, REDIS: 20 + 5 + 2.5, MONGODB: 80}
    assert Load(1000, 0.5, 0.25).cores(COSTS)[API] == pytest.approx(0.14)


def test_replicas_at_the_target_utilisation_and_where_each_part_saturates() -> None:
    sizes = {API: Replica(1), WORKER: Replica(2), REDIS: Replica(1), MONGODB: Replica(8)}
    result = plan(Load(10_000, 0.0, 0.0), COSTS, target=0.5, replicas=sizes)
    # api: 10,000 x 100 µs = 1 core; at 50 % of 1 core each, 2 pods.
    assert result.needs[API] == capacity.Need(1.0, 2, 0.5)
    assert result.needs[WORKER] == capacity.Need(0.5, 1, 0.25)
    assert result.needs[REDIS] == capacity.Need(0.2, 1, 0.2)
    assert result.needs[MONGODB] == capacity.Need(0.8, 1, 0.1)
    # Two api pods take 2 x 1e6 / 100 µs; one Redis primary 1e6 / 20 µs.
    assert result.ceilings == {API: 20_000, WORKER: 40_000, REDIS: 50_000, MONGODB: 100_000}
    assert result.first_bottleneck == API
    assert result.documents_per_second == 20_000


def test_past_one_core_of_commands_redis_needs_more_primaries() -> None:
    result = plan(Load(100_000, status_reads=0.5, balance_reads=0.0), COSTS, target=0.7)
    # Redis: 100,000 x (20 + 0.5 x 10) µs = 2.5 cores of commands: four primaries at 70 %.
    assert result.needs[REDIS] == capacity.Need(2.5, 4, 0.625)
    # api: 100,000 x (100 + 0.5 x 60) µs = 13 cores: 19 pods of one core at 70 %.
    assert result.needs[API].replicas == 19
    assert result.ceilings[REDIS] == 4e6 / 25
    assert result.ceilings[API] == pytest.approx(19e6 / 130, abs=0.1)
    assert result.first_bottleneck == API


def test_one_machine_is_bounded_by_its_cpus_or_by_a_single_process() -> None:
    per_click = {API: 150.0, REDIS: 25.0, "wrk": 25.0}
    # One api process: its own core runs out first (1e6 / 150 µs).
    assert capacity.machine_ceiling(per_click, 2, {API: 1}) == pytest.approx(6_666.7, abs=0.1)
    # Two: the two CPUs shared by everything (2e6 / 200 µs).
    assert capacity.machine_ceiling(per_click, 2, {API: 2}) == pytest.approx(10_000)


def test_the_plan_from_a_bench_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def measured(cpu: dict[str, float], documents: float) -> dict[str, object]:
        return {"cpu_us": cpu, "mongodb": {"documents": {"all": documents}}}

    document = {
        "results": {
            "8_cost": {
                "click": measured(COSTS.cpu_us["click"], 2.0),
                "click_status": measured(COSTS.cpu_us["click_status"], 0.0),
                "balance": measured(COSTS.cpu_us["balance"], 0.0),
            }
        }
    }
    assert Costs.from_bench(document) == COSTS
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(document))
    capacity.main(["--clicks", "10000", "--target", "0.5", "--bench", str(path)])
    out = capsys.readouterr().out
    assert "first to saturate: api" in out
    assert "MongoDB documents stored: 20,000/s" in out


def bench_run(processes: int, accepted_per_second: float, api_percent: float) -> dict[str, object]:
    """The parts of a bench.json phase 1 that the check reads: 5 s runs of 10,000 clicks."""
    run = {
        "seconds": 5.0,
        "accepted_at_server": 10_000,
        "cpu_percent": {API: api_percent, REDIS: 10.0, "wrk": 10.0},
    }
    return {
        "options": {"web_workers": processes},
        "results": {
            "machine": {"cpus": 2},
            "1_http": {"runs": {"api": [run]}, "api_accepted_per_second": accepted_per_second},
        },
    }


def test_a_run_predicted_from_the_costs_of_another() -> None:
    one = bench_run(1, accepted_per_second=2_000, api_percent=100.0)
    # From one's costs (api 500 µs, Redis 50, wrk 50 a click): one process, 1e6 / 500 µs.
    assert capacity.phase1_per_click(one) == {API: 500.0, REDIS: 50.0, "wrk": 50.0}
    assert capacity.check(one, one) == capacity.Check(1, 2_000.0, 2_000.0)
    # Two processes share the two CPUs: 2e6 / 600 µs.
    two = bench_run(2, accepted_per_second=3_000, api_percent=150.0)
    found = capacity.check(one, two)
    assert found.predicted == pytest.approx(3_333.3)
    assert found.error == pytest.approx(0.111, abs=0.001)
