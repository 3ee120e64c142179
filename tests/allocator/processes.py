"""Allocator service processes for the tests and the benchmark: real uvicorn, real MongoDB."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from devstack.servers import BIN, Process, free_port, wait_until

COUNTERS_DB = "crypto_mine"


class AllocatorProcess(Process):
    """``crypto-mine-id-allocator`` on a free loopback port; restartable on the same port."""

    def __init__(
        self, folder: Path, mongo_uri: str, env: Mapping[str, str] | None = None, name: str = ""
    ) -> None:
        self.port = free_port()
        full = dict(os.environ)
        full.update(
            {
                "MONGODB_URI": mongo_uri,
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "LOG_LEVEL": "INFO",
                "DB_SERVER_SELECTION_TIMEOUT": "2000",
            }
        )
        full.update(env or {})
        label = name or f"id-allocator:{self.port}"
        super().__init__(
            label, [str(BIN / "crypto-mine-id-allocator")], folder / f"{label}.log", full
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AllocatorProcess:
        super().start()
        return self

    def wait_ready(self, timeout: float = 20) -> AllocatorProcess:
        def healthy() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        try:
            wait_until(healthy, timeout, self.name)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} not healthy; log:\n{self.log.read_text()[-3000:]}"
            ) from None
        return self

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text


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
