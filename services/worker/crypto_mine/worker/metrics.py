"""The worker's metrics (SPEC §7 names), shared by its processes through the multiprocess dir."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from crypto_mine.common.names import Metrics

PROCESSED = Counter(Metrics.worker_processed, "Clicks applied to MongoDB (duplicates excluded).")
FAILED = Counter(
    Metrics.worker_failed, "Clicks of failed job attempts, by error code.", ["error_code"]
)
DUPLICATES = Counter(
    "mining_worker_duplicates_total", "Clicks found already applied by an earlier batch."
)
BATCH_SECONDS = Histogram(
    "mining_worker_batch_duration_seconds",
    "Time to apply one batch (MongoDB and Redis).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_CLICKS = Histogram(
    "mining_worker_batch_clicks",
    "Clicks carried by one batch.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
JOB_LAG = Histogram(
    "mining_worker_job_lag_seconds",
    "Time from enqueue to the start of processing, per batch.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
MARKS_SWEPT = Counter(
    "mining_worker_marks_swept_total",
    "Balance marks of finished batches left by stopped worker processes, removed by the sweep.",
)
