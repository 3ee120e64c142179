"""The metric names the services really export, read from their own registries."""

from __future__ import annotations

import importlib

import promql_parser
from prometheus_client import REGISTRY

from crypto_mine.common.names import Metrics

METRIC_MODULES = (
    "crypto_mine.common.metrics",
    "crypto_mine.common.mongo_metrics",
    "crypto_mine.api.http.observability",
    "crypto_mine.worker.metrics",
    "crypto_mine.allocator.metrics",
    "crypto_mine.operator.metrics",
)
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
}


def exported_metrics() -> set[str]:
    """Sample names of every metric the api, worker, id-allocator and operator define."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    # The worker's queue reporter (a collector of its own), the gauge made with the first
    # synchronous MongoDB client, and Prometheus' own per target.
    names = {Metrics.queue_depth, Metrics.worker_lag, Metrics.dead_letters, "up"}
    names.add(Metrics.mongo_writable)
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """Names of every series selector in a PromQL expression (parsing it)."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found
