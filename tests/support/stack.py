"""The whole stack as real processes on loopback ports, each one killable and restartable.

Redis (append-only file), the MongoDB server, the id-allocator, the api under uvicorn with
several worker processes, and worker pods (supervisor + worker processes). Every process keeps
its port across restarts, so clients and the other services find it again.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import redis

from crypto_mine.common.names import ShardKeys
from crypto_mine.pipeline.queue_stats import ShardQueueKeys
from devstack.servers import BIN, MongoServer, Process, RedisServer, free_port, wait_until
from tests.support.allocator import TOKEN as ALLOCATOR_TOKEN
from tests.support.allocator import AllocatorProcess
from tests.support.worker import WorkerProcess

DATABASE = "stack"


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ApiProcess(Process):
    """``crypto-mine-api`` (uvicorn, ``WEB_CONCURRENCY`` processes) on a fixed loopback port."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {**env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        super().__init__("api", [str(BIN / "crypto-mine-api")], folder / "api.log", full)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        super().start()
        return self

    def wait_ready(self, timeout: float = 120) -> ApiProcess:
        expected = int(self.env.get("WEB_CONCURRENCY", "1"))

        def serving() -> bool:
            if not self.alive():
                raise RuntimeError(f"api exited: {self.log.read_text()[-3000:]}")
            ok = httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            return ok and (expected == 1 or len(self.workers()) >= expected)

        wait_until(serving, timeout, "api")
        return self

    def workers(self) -> list[int]:
        """The uvicorn worker processes (the master's spawned children)."""
        return self.spawned_children()

    def rss_kib(self) -> int:
        """Resident memory of the master and its worker processes together."""
        if not self.alive():
            return 0
        return rss_kib(self.pid) + sum(rss_kib(pid) for pid in self.workers())


@dataclass
class Stack:
    """Every service of the project as real processes; ``start()``, then ``stop()``."""

    folder: Path
    api_env: dict[str, str] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)
    allocator_env: dict[str, str] = field(default_factory=dict)
    worker_pods: int = 2  # spread over the shards: pod n serves shard n % shards
    web_concurrency: int = 2
    shards: int = 1  # click shards, each with a Redis server of its own
    redis_fsync: str = "always"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    started: list[Process] = field(default_factory=list)

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.redises = [
            RedisServer(self.folder / f"redis-{n}", aof=True, fsync=self.redis_fsync)
            for n in range(self.shards)
        ]
        for server in self.redises:
            self.started.append(server.start())
        self.redis = self.redises[0]
        self.mongo = MongoServer(self.folder / "mongo")
        self.started.append(self.mongo.start())
        base = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        shared = {
            "REDIS_URL": self.redis.url,
            "MONGODB_URI": self.mongo.uri,
            "MONGODB_DB": DATABASE,
            "LOG_LEVEL": "WARNING",
            "DB_SERVER_SELECTION_TIMEOUT": "2000",
        }
        if self.shards > 1:
            shared["REDIS_SHARD_URLS"] = ",".join(server.url for server in self.redises)
        self.allocator = AllocatorProcess(
            self.folder, self.mongo.uri, {**shared, **self.allocator_env}, name="id-allocator"
        )
        # Listed once started, before waiting: a process that never gets ready is stopped too.
        self.started.append(self.allocator.start())
        self.allocator.wait_ready(60)
        self.workers = [
            WorkerProcess(
                self.folder / f"worker-{n}",
                self.redis.url,
                self.mongo.uri,
                DATABASE,
                **{
                    **shared,
                    "MINING_WORKER_CONCURRENCY": "2",
                    "MINING_SHARD": str(n % self.shards),
                    **self.worker_env,
                },
            )
            for n in range(self.worker_pods)
        ]
        for worker in self.workers:
            self.started.append(worker)  # its start() waits for its metrics
            worker.start()
        self.api = ApiProcess(
            self.folder,
            {
                **base,
                **shared,
                "JWT_SECRET": self.secret,
                "ID_ALLOCATOR_URL": self.allocator.url,
                "ID_ALLOCATOR_TOKEN": ALLOCATOR_TOKEN,
                "ID_ALLOCATOR_TIMEOUT": "2",
                "WEB_CONCURRENCY": str(self.web_concurrency),
                "AUTH_COOKIE_SECURE": "false",
                **self.api_env,
            },
        )
        self.started.append(self.api.start())
        self.api.wait_ready()

    def stop(self) -> None:
        for process in reversed(self.started):
            if isinstance(process, (ApiProcess, WorkerProcess)):
                process.stop(15)
                process.kill_group()  # orphans of a killed master, if any
            else:
                process.stop()
        self.started.clear()

    def token(self, user_id: str, ttl: int = 3600) -> str:
        return jwt.encode(
            {"sub": user_id, "exp": int(time.time()) + ttl}, self.secret, algorithm="HS256"
        )

    def redis_client(self, shard: int = 0) -> redis.Redis:
        url = self.redises[shard].url
        return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)

    def queue_depth(self) -> int:
        """Clicks waiting, on every shard."""
        total = 0
        for shard in range(self.shards):
            with self.redis_client(shard) as client:
                total += int(client.get(ShardKeys(shard).queue_depth) or 0)
        return total

    def dead_letters(self) -> int:
        total = 0
        for shard in range(self.shards):
            with self.redis_client(shard) as client:
                total += int(client.zcard(ShardQueueKeys(shard).failed))
        return total
