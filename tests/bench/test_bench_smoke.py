"""``make bench``'s harness runs end to end (``--quick``: tiny durations) and reports every row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Phase 5's rows are tests/allocator/bench_ids.py's: these at least.
ROWS = {
    "http.click_vs_bare": 1,
    "http.api_cpu_per_click": 1,
    "redis.round_trips_full_load": 2,
    "redis.round_trips_one_connection": 2,
    "redis.round_trips_monitor_sample": 2,
    "redis.commands_full_load": 2,
    "redis.commands_one_connection": 2,
    "worker.apply_vs_insert_many": 3,
    "worker.apply_vs_two_write_floor": 3,
    "e2e.ours_vs_naive": 4,
    "ids.http_segment_count_1_32_connections": 5,
    "ids.http_segment_count_1000_8_connections": 5,
    "ids.raw_inc_per_id_16_concurrent": 5,
    "latency.click": 6,
    "latency.worker_lag": 6,
    "redis.bytes_per_click_record": 7,
    "redis.bytes_per_click_all": 7,
    "cost.click": 8,
    "cost.click_status": 8,
    "cost.balance": 8,
    "shards.two_vs_one": 9,
}


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    document = json.loads((tmp_path / "bench.json").read_text())
    rows = {row["key"]: row for row in document["rows"]}
    phases = {key: row["phase"] for key, row in rows.items()}
    assert ROWS.items() <= phases.items()
    assert {key for key, phase in phases.items() if phase != 5} == {
        key for key, phase in ROWS.items() if phase != 5
    }
    for row in rows.values():
        assert row["what"] in done.stdout, row["what"]
        assert row["value"] >= 0, row
        if row["ratio"] is not None:
            assert row["ratio"] > 0, row
    assert "machine: " in done.stdout
    assert "CPUs (" in done.stdout
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    for run in document["results"]["9_shards"]["runs"]["2"]:  # both shards carried clicks
        assert min(run["redis_commands"]) > 0, run

    results = document["results"]
    assert results["1_http"]["cpus"] in rows["http.click_vs_bare"]["note"]
    for run in results["1_http"]["runs"]["api"]:
        # The server accepted every click wrk saw answered (and those in flight at the end).
        assert run["accepted_at_server"] >= run["requests"] - run["errors"]["status"] > 0
    assert rows["redis.round_trips_one_connection"]["value"] > 0
    for system in ("ours", "naive"):
        e2e = results["4_e2e"][system]
        assert e2e["exact"], e2e
        assert e2e["clicks"] == e2e["clicks_sent"] == e2e["answered_2xx"]
    assert results["6_latency"]["achieved_per_second"] > 0
    held = results["7_memory"]
    warm_up = document["options"]["e2e_warmup_clicks"]
    assert held["clicks"] == results["4_e2e"]["ours"]["clicks"] + warm_up
    # Fewer fields, the same keys: smaller, whatever the allocator does with them.
    assert 0 < held["record_bytes"] < held["record_bytes_before"], held
    costs = results["8_cost"]
    click = costs["click"]
    assert click["requests"] == results["4_e2e"]["ours"]["clicks"]
    # Every component worked for the clicks: each click is one document in MongoDB. (A quick
    # run's few clicks may take less than one clock tick of a single process's CPU time;
    # Redis's own count is in microseconds.)
    assert set(click["cpu_us"]) == {"api", "worker pod", "redis", "mongodb", "all"}, click
    assert click["cpu_us"]["all"] > 0, click
    assert click["redis"]["commands"] > 1, click
    assert click["redis"]["cpu_us"] > 0, click
    assert click["mongodb"]["documents"]["clicks"] == 1, click
    assert click["mongodb"]["commands"]["insert"] > 0, click
    for read in ("click_status", "balance"):
        assert costs[read]["statuses"].get("200", 0) == costs[read]["requests"] > 0, costs[read]
        assert costs[read]["mongodb"]["documents"]["all"] == 0, costs[read]
        assert costs[read]["redis"]["commands"] > 0, costs[read]
