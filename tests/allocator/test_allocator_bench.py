"""The benchmark script runs end to end and reports every row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_bench_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.allocator.bench_ids", "--json", "--seconds", "0.2"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=True,
    )
    rows = orjson.loads(done.stdout)
    assert [row["name"].split(",")[0] for row in rows] == [
        "in-process segment allocator",
        "HTTP segment",
        "HTTP segment",
        "HTTP strict",
        "HTTP strict",
        "raw $inc per id",
        "raw $inc per id",
    ]
    assert all(row["ids_per_s"] > 0 for row in rows)
    assert rows[5]["ratio"] == 1.0
