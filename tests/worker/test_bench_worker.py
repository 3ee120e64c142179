"""The worker benchmark runs end to end (tiny sizes) and counts what it claims to count."""

from __future__ import annotations

from typing import Any

import pytest

from crypto_mine.worker import jobs
from tests.worker import bench_worker


def test_bench_reports_throughput_and_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in bench_worker.environment("", "", 0):
        monkeypatch.delenv(name, raising=False)
    original: Any = jobs.pipeline
    monkeypatch.setattr(jobs, "pipeline", original)
    result = bench_worker.run(count=600, users=30, batch=100)
    assert result["clicks"] == 600
    assert result["jobs"] == 6
    assert result["worker_clicks_per_second"] > 0
    assert result["raw_insert_many_docs_per_second"] > 0
    # The server's CPU is read in every phase (and it worked in each).
    server = result["mongo_server_cpu_seconds"]
    assert min(server["worker"], server["raw"], server["floor"]) > 0
    assert result["server_bound_ratio"] > 0
    # 600 click inserts; one balance update per user per job (30 users in each of 6 jobs);
    # the ledger's deferred writes, flushed once at the end: 6 markers, and one statement
    # unmarking the 30 users (the documents counted are those the server reports written).
    assert result["mongo_documents_written_per_click"] == pytest.approx(
        (600 + 6 * 30 + 6 + 30) / 600, abs=0.01
    )
