"""``make run``: the whole stack on this machine, until Ctrl-C.

    python -m devstack            start Redis, MongoDB (nx-27017), id-allocator, api, worker
    python -m devstack token USER print a token for USER, signed with the local secret

State and logs live under ``.local/run/``. Ports come from the environment (defaults below).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

import redis as redis_lib

from crypto_mine.pipeline.queue_stats import QueueKeys

from .servers import BIN, MongoServer, Process, RedisServer, port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEVSTACK_STATE") or ROOT / ".local" / "run")
SECRET_FILE = STATE / "jwt-secret"


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def jwt_secret() -> str:
    STATE.mkdir(parents=True, exist_ok=True)
    if not SECRET_FILE.exists():
        SECRET_FILE.write_text(secrets.token_urlsafe(48))
        SECRET_FILE.chmod(0o600)
    return SECRET_FILE.read_text().strip()


def tokens(users: list[str]) -> list[str]:
    """Tokens for ``users`` signed with the local secret (no account needed)."""
    os.environ["JWT_SECRET"] = jwt_secret()
    from crypto_mine.api.http.auth import issue_token
    from crypto_mine.api.settings import ApiSettings

    settings = ApiSettings.from_env()
    return [issue_token(settings, user) for user in users]


def token(user: str) -> None:
    print(tokens([user])[0])


def banner(api: int, allocator: int, worker: int, redis_url: str, mongo_uri: str) -> str:
    return f"""
crypto-mine is running (Ctrl-C stops everything; logs in {STATE}/):
  api           http://127.0.0.1:{api}   (OpenAPI: /openapi.json, metrics: /api/metrics)
  id-allocator  http://127.0.0.1:{allocator}
  worker        http://127.0.0.1:{worker}/metrics
  redis         {redis_url}
  mongodb       {mongo_uri}

Try it (sign up, then click with the token; already signed up? use /api/auth/login):
  TOKEN=$(curl -s -X POST http://127.0.0.1:{api}/api/auth/register \\
    -H "Content-Type: application/json" \\
    -d '{{"username":"alice","password":"correct horse"}}' \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  curl -s -X POST http://127.0.0.1:{api}/api/mining/click \\
    -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: click-1" -d '{{"clicks": 1}}'
  curl -s "http://127.0.0.1:{api}/api/mining/click/status?key=click-1" \\
    -H "Authorization: Bearer $TOKEN"
  curl -s http://127.0.0.1:{api}/api/mining/status -H "Authorization: Bearer $TOKEN"
"""


def run() -> int:
    api_port = port("API_PORT", 8080)
    allocator_port = port("ID_ALLOCATOR_PORT", 8081)
    allocator_metrics = port("ID_ALLOCATOR_METRICS_PORT", 9101)
    worker_port = port("WORKER_METRICS_PORT", 9100)
    redis_port = port("REDIS_PORT", 6379)
    mongo_port = port("MONGO_PORT", 27017)
    busy = [
        f"{name} port {number}"
        for name, number in (
            ("api", api_port),
            ("id-allocator", allocator_port),
            ("id-allocator metrics", allocator_metrics),
            ("worker", worker_port),
            ("redis", redis_port),
            ("mongodb", mongo_port),
        )
        if port_open(number)
    ]
    if busy:
        print(
            f"already in use: {', '.join(busy)}; set API_PORT, ID_ALLOCATOR_PORT, "
            "ID_ALLOCATOR_METRICS_PORT, WORKER_METRICS_PORT, REDIS_PORT or MONGO_PORT",
            file=sys.stderr,
        )
        return 1

    started: list[Process] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        redis = RedisServer(STATE / "redis", redis_port, aof=True).start()
        started.append(redis)
        mongo = MongoServer(STATE / "mongo", mongo_port).start()
        started.append(mongo)
        # REDIS_PORT names this stack's Redis; the services get its whole URL instead.
        inherited = {k: v for k, v in os.environ.items() if k not in ("REDIS_HOST", "REDIS_PORT")}
        env = {
            **inherited,
            "REDIS_URL": redis.url,
            "MONGODB_URI": mongo.uri,
            "JWT_SECRET": jwt_secret(),
            "ID_ALLOCATOR_URL": f"http://127.0.0.1:{allocator_port}",
            "ID_ALLOCATOR_TOKEN": secrets.token_urlsafe(32),  # the api's and the allocator's
            "HOST": "127.0.0.1",
        }
        services = [
            Process(
                "id-allocator",
                [str(BIN / "crypto-mine-id-allocator")],
                STATE / "id-allocator.log",
                {**env, "PORT": str(allocator_port), "ID_METRICS_PORT": str(allocator_metrics)},
            ),
            Process(
                "worker",
                [str(BIN / "crypto-mine-worker")],
                STATE / "worker.log",
                {
                    **env,
                    "WORKER_METRICS_PORT": str(worker_port),
                    "PROMETHEUS_MULTIPROC_DIR": str(STATE / "worker-metrics"),
                },
            ),
            Process(
                "api",
                [str(BIN / "crypto-mine-api")],
                STATE / "api.log",
                {**env, "PORT": str(api_port)},
            ),
        ]
        for service in services:
            started.append(service.start())
        for name, number in (
            ("id-allocator", allocator_port),
            ("worker", worker_port),
            ("api", api_port),
        ):
            wait_until(lambda number=number: port_open(number), 30, name)  # type: ignore[misc]
        workers = redis_lib.Redis.from_url(redis.url)
        wait_until(lambda: workers.scard(QueueKeys.workers) > 0, 30, "worker processes")
        workers.close()
        print(banner(api_port, allocator_port, worker_port, redis.url, mongo.uri), flush=True)
        while not stopping:
            for process in started:
                if not process.alive():
                    print(f"{process.name} exited; see {process.log}", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        for process in reversed(started):
            process.stop()
        print("stopped", file=sys.stderr)
    return 0


def main() -> None:
    if sys.argv[1:2] == ["token"]:
        token(sys.argv[2] if len(sys.argv) > 2 else "alice")
        return
    sys.exit(run())


if __name__ == "__main__":
    main()
