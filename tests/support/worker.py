"""The worker pod as a real process tree (supervisor + worker processes)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from devstack.servers import BIN, Process, free_port, wait_until


class WorkerProcess(Process):
    def __init__(self, folder: Path, redis_url: str, mongo_uri: str, database: str, **env: object):
        self.metrics_port = free_port()
        environ = {
            **os.environ,
            "REDIS_URL": redis_url,
            "MONGODB_URI": mongo_uri,
            "MONGODB_DB": database,
            "WORKER_METRICS_PORT": str(self.metrics_port),
            "MINING_WORKER_CONCURRENCY": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
            **{key: str(value) for key, value in env.items()},
        }
        argv = [str(BIN / "crypto-mine-worker")]
        super().__init__("worker", argv, folder / "worker.log", environ)

    def start(self) -> WorkerProcess:
        super().start()
        wait_until(lambda: bool(self.metrics()), 20, "worker metrics")
        return self

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
