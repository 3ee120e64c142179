"""The processes a benchmark run starts: its own Redis and MongoDB, HTTP servers, worker pods."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from crypto_mine.common.settings import Env
from crypto_mine.worker.settings import WorkerSettings
from devstack.servers import BIN, Process, free_port, wait_until
from tests.support.worker import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = secrets.token_urlsafe(48)  # one per run; the servers and the tokens share it
HIGH = str(10**9)

# Every click is accepted: limits and the queue's bound far above what the run can reach.
UNLIMITED = {
    "MINING_RATE_LIMIT_GLOBAL": HIGH,
    "MINING_RATE_LIMIT_GLOBAL_BURST": HIGH,
    "MINING_RATE_LIMIT_PER_USER": HIGH,
    "MINING_RATE_LIMIT_USER_BURST": HIGH,
    "MINING_RATE_LIMIT_PER_IP": HIGH,
    "MINING_RATE_LIMIT_IP_BURST": HIGH,
    "MINING_QUEUE_MAX_DEPTH": HIGH,
    "API_RATE_LIMIT": "0",  # the general limit of the other /api/* routes: off
}


def default_worker_concurrency() -> int:
    """``MINING_WORKER_CONCURRENCY``'s default, as the worker reads it."""
    return WorkerSettings.from_env(Env({})).concurrency


def environment(redis_url: str, mongo_uri: str, database: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "MONGODB_URI": mongo_uri,
        "MONGODB_DB": database,
        "JWT_SECRET": JWT_SECRET,
        "HOST": "127.0.0.1",
        **UNLIMITED,
        **extra,
    }


class HttpServer(Process):
    """An HTTP server process on a free loopback port, ready when ``/healthz`` answers 200."""

    def __init__(self, name: str, argv: list[str], folder: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        full = {**env, "PORT": str(self.port)}
        super().__init__(name, argv, folder / f"{name}.log", full)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpServer:
        super().start()
        return self.wait_ready()

    def launch(self) -> HttpServer:
        """Start without waiting (see ``wait_ready``)."""
        super().start()
        return self

    def wait_ready(self) -> HttpServer:
        def healthy() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        try:
            wait_until(healthy, 60, self.name)
        except TimeoutError:
            tail = self.log.read_text()[-3000:]
            raise TimeoutError(f"{self.name} not healthy; log:\n{tail}") from None
        return self


def api_server(folder: Path, env: Mapping[str, str]) -> HttpServer:
    """The api by its own entry point."""
    return HttpServer("api", [str(BIN / "crypto-mine-api")], folder, env)


def app_server(name: str, target: str, folder: Path, env: Mapping[str, str]) -> HttpServer:
    """Another ASGI application, served with the api's uvicorn options (``bench.serve``)."""
    return HttpServer(name, [sys.executable, "-m", "bench.serve", target], folder, env)


def worker_pod(folder: Path, redis_url: str, mongo_uri: str, database: str) -> WorkerProcess:
    """The worker pod with its default concurrency."""
    pod = WorkerProcess(
        folder,
        redis_url,
        mongo_uri,
        database,
        MINING_WORKER_CONCURRENCY=default_worker_concurrency(),
        PYTHONPATH=str(ROOT),
    )
    return pod


def naive_workers(folder: Path, env: Mapping[str, str], count: int) -> list[Process]:
    return [
        Process(
            f"naive-worker-{n}",
            [sys.executable, "-m", "bench.naive", "worker"],
            folder / f"naive-worker-{n}.log",
            env,
        )
        for n in range(count)
    ]
