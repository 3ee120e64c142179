"""The id-allocator as a real uvicorn process on a free loopback port, on a given MongoDB."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import httpx

from devstack.servers import BIN, Process, free_port, wait_until

# The service token of every allocator the tests start (the api's settings carry it too).
TOKEN = "test-allocator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class AllocatorProcess(Process):
    """``crypto-mine-id-allocator`` on free loopback ports; restartable on the same ports."""

    def __init__(
        self, folder: Path, mongo_uri: str, env: Mapping[str, str] | None = None, name: str = ""
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        full = dict(os.environ)
        full.update(
            {
                "MONGODB_URI": mongo_uri,
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "ID_METRICS_PORT": str(self.metrics_port),
                "ID_ALLOCATOR_TOKEN": TOKEN,
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
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
