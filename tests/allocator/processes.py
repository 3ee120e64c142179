"""Allocator service processes for the tests and the benchmark: real uvicorn, real MongoDB."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from tests.support.allocator import AllocatorProcess

__all__ = ["COUNTERS_DB", "AllocatorProcess", "counter_value", "metric_value"]

COUNTERS_DB = "crypto_mine"


def counter_value(mongo_uri: str, name: str) -> int | None:
    """The counter's ``last_id`` as stored in MongoDB, or None when it does not exist."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=3000)
    try:
        doc = client[COUNTERS_DB]["counters"].find_one({"_id": name})
    finally:
        client.close()
    return None if doc is None else int(doc["last_id"])


def metric_value(exposition: str, sample: str) -> float:
    """The value of one sample line (name with labels, exactly) of an exposition; 0 if absent."""
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
