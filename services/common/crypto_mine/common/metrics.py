"""Prometheus exposition that stays correct with several processes per pod.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn or worker processes), every process
writes its samples there and the exposition merges them; otherwise the default registry is used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .names import Metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REDIS_LATENCY = Histogram(
    Metrics.redis_latency,
    "Latency of Redis calls in milliseconds, by operation.",
    ["operation"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
HTTP_REQUESTS = Counter(
    Metrics.http_requests,
    "HTTP answers by route template, method and status (the click route included).",
    ["route", "method", "status"],
)
STATUS_CACHE = Counter(
    Metrics.status_cache,
    "Reads of a user's status from the Redis cache: hit, miss (read from MongoDB) or error "
    "(Redis away, read from MongoDB).",
    ["result"],
)


def exposition_registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The current samples in the text format, and their content type."""
    return generate_latest(exposition_registry()), CONTENT_TYPE_LATEST


def serve_metrics(
    port: int,
    registry: CollectorRegistry | None = None,
    addr: str = "0.0.0.0",  # noqa: S104 - pods listen on all interfaces
) -> None:
    """Serve ``/metrics`` from a background thread (worker and operator)."""
    start_http_server(port, addr=addr, registry=registry or exposition_registry())


def prepare_multiprocess_dir() -> Path:
    """Give child processes a folder to share samples through, emptied of a previous run's.

    Call before starting the processes; they read the variable when they import the client.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="crypto-mine-metrics-")
        os.environ[MULTIPROC_ENV] = folder
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path
