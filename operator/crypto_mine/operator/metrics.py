"""The operator's own Prometheus metrics, served by ``crypto_mine.common.metrics.serve_metrics``."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

PREFIX = "crypto_mine_operator"

desired_replicas = Gauge(
    f"{PREFIX}_desired_replicas",
    "Replicas the QueueAutoscaler last decided on.",
    ["namespace", "name"],
)
current_replicas = Gauge(
    f"{PREFIX}_current_replicas",
    "Replicas of the scale target when last read.",
    ["namespace", "name"],
)
metric_value = Gauge(
    f"{PREFIX}_metric_value",
    "Queue depth the QueueAutoscaler last read.",
    ["namespace", "name"],
)
scale_total = Counter(
    f"{PREFIX}_scale_total",
    "Rescales of the target, by direction (up or down).",
    ["namespace", "name", "direction"],
)
metric_errors_total = Counter(
    f"{PREFIX}_metric_errors_total",
    "Readings of the queue depth that failed.",
    ["namespace", "name", "source"],
)
scale_errors_total = Counter(
    f"{PREFIX}_scale_errors_total",
    "Reads or writes of the target's scale that failed.",
    ["namespace", "name"],
)

leader = Gauge(
    f"{PREFIX}_leader",
    "1 while this replica holds the leader Lease (or runs without election), else 0.",
)

_PER_RESOURCE = (desired_replicas, current_replicas, metric_value)


def forget(namespace: str, name: str) -> None:
    """Drop the gauges of a QueueAutoscaler that is gone (counters stay, as counters do)."""
    for gauge in _PER_RESOURCE:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
