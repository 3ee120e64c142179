"""compose.yaml as its users run it (podman-compose here; the file is plain Compose
specification, so `docker compose` runs it too): up, a click end to end, --scale, logs, and the
click ledger while containers are killed and restarted."""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import redis
import yaml

from crypto_mine.common.names import Keys
from crypto_mine.pipeline.queue_stats import QueueKeys
from devstack.servers import free_port
from tests.chaos.load import Ledger, LoadGenerator
from tests.chaos.verify import verify, wait_drained
from tests.support.images import ROOT, build_images, podman, podman_env
from tests.support.stack import DATABASE

pytestmark = pytest.mark.timeout(1200)
COMPOSE = [str(Path(sys.executable).parent / "podman-compose")]


@dataclass
class Mongo:
    uri: str


@dataclass
class ComposeStack:
    """A project of compose.yaml, with Redis and MongoDB also published on loopback for checks."""

    project: str
    folder: Path
    env: dict[str, str]
    api_port: int
    redis_port: int
    mongo_port: int

    @property
    def files(self) -> list[str]:
        return ["-f", str(ROOT / "compose.yaml"), "-f", str(self.folder / "published.yaml")]

    def compose(self, *argv: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [*COMPOSE, "-p", self.project, *self.files, *argv],
            capture_output=True, text=True, timeout=timeout, check=False, env=self.env,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(argv)}: {result.stderr[-3000:]}")
        return result.stdout + result.stderr

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def mongo(self) -> Mongo:
        return Mongo(f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true")

    shards = 1

    def redis_client(self, shard: int = 0) -> redis.Redis:
        return redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=5)

    def dead_letters(self) -> int:
        with self.redis_client() as client:
            return int(client.zcard(QueueKeys.failed))

    def containers(self, service: str) -> list[str]:
        listed = podman(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=io.podman.compose.service={service}",
        ).stdout  # fmt: skip
        return sorted(listed.split())

    def running(self, service: str) -> list[str]:
        listed = podman(
            "ps", "--format", "{{.Names}}",
            "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=io.podman.compose.service={service}",
        ).stdout  # fmt: skip
        return sorted(listed.split())

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s")


@contextmanager
def compose_stack(folder: Path) -> Iterator[ComposeStack]:
    """A project of compose.yaml of its own, up and ready; down with its volumes after."""
    build_images()
    api_port, redis_port, mongo_port = free_port(), free_port(), free_port()
    (folder / "published.yaml").write_text(
        yaml.safe_dump(
            {
                "services": {
                    "redis": {"ports": [f"127.0.0.1:{redis_port}:6379"]},
                    "mongodb": {"ports": [f"127.0.0.1:{mongo_port}:27017"]},
                }
            }
        )
    )
    env = {
        **podman_env(),
        "API_PORT": str(api_port),
        "MONGODB_DB": DATABASE,
        "TRUSTED_PROXY_COUNT": "1",  # the load generator's users each have an IP of their own
        "MINING_WORKER_CONCURRENCY": "2",
    }
    found = ComposeStack(
        f"cmtest{secrets.token_hex(3)}", folder, env, api_port, redis_port, mongo_port
    )
    try:
        started = time.monotonic()
        found.compose("up", "-d")
        wait(found.ready, 180, "the api ready through compose")
        print(f"compose up -> api ready: {time.monotonic() - started:.0f} s")
        yield found
    finally:
        try:
            (folder / "logs.txt").write_text(found.compose("logs"))
        finally:
            found.compose("down", "-v", "--timeout", "5", timeout=300)
            # podman-compose's down names the file's containers only: the scaled ones would be
            # left running, holding the project's network and volumes; all go by its label.
            label = f"label=io.podman.compose.project={found.project}"
            for kind, everything in (("container", ["--all"]), ("network", []), ("volume", [])):
                listed = podman(kind, "ls", *everything, "--quiet", "--filter", label, check=False)
                if left := listed.stdout.split():
                    podman(kind, "rm", "--force", *left, check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with compose_stack(tmp_path_factory.mktemp("compose")) as found:
        yield found


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[ComposeStack]:
    """A stack of its own: the ledger holds every click its database has."""
    with compose_stack(tmp_path) as found:
        yield found


def sign_up(stack: ComposeStack, name: str) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.api_url}/api/auth/register",
        json={"username": name, "password": "correct horse battery"},
        headers={"X-Forwarded-For": f"10.9.{len(name)}.{secrets.randbelow(250)}"},
        timeout=15,
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_up_click_scale_and_logs(stack: ComposeStack) -> None:
    for service in ("redis", "mongodb", "id-allocator", "api", "worker"):
        assert len(stack.running(service)) == 1, service
    headers = sign_up(stack, "compose-alice")
    answer = httpx.post(
        f"{stack.api_url}/api/mining/click", headers={**headers, "Idempotency-Key": "k1"},
        json={"clicks": 2}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text

    def completed() -> bool:
        status = httpx.get(f"{stack.api_url}/api/mining/click/status", params={"key": "k1"},
                           headers=headers, timeout=5)  # fmt: skip
        return status.status_code == 200 and status.json()["result"]["balance"] == 2

    wait(completed, 60, "the click applied")
    stack.compose("up", "-d", "--scale", "worker=3")
    wait(lambda: len(stack.running("worker")) == 3, 90, "three workers")
    logs = stack.compose("logs", "worker")
    assert "[worker]" in logs
    assert "supervising 2 worker processes" in logs, logs[-3000:]
    # podman-compose's logs name the file's containers of a service (a scaled count is not
    # remembered between commands); each scaled one started its processes all the same.
    for name in stack.running("worker"):
        assert (
            "supervising 2 worker processes"
            in podman("logs", name).stderr + podman("logs", name).stdout
        ), name


def test_the_ledger_holds_while_containers_are_killed_and_stopped(
    fresh_stack: ComposeStack,
) -> None:
    stack = fresh_stack
    rng = random.Random(16)
    faults: list[str] = []

    def hit(service: str, how: str) -> None:
        name = rng.choice(stack.running(service))
        if how == "kill":
            podman("kill", "--signal", "KILL", name)
        else:
            podman("stop", "--time", "90", name, timeout=150)
        time.sleep(rng.uniform(0.3, 1.0))
        podman("start", name)
        faults.append(f"{how} {service}")

    async def run() -> Ledger:
        # The stack's default Redis window (5 min) outlasts the run: no late repeats here
        # (tests/chaos sends them against a 10 s window).
        generator = LoadGenerator(stack.api_url, rng, rate=60, window=300.0, late_share=0.0)
        await generator.sign_up_many(12)
        load = asyncio.create_task(generator.run(new_user_every=5.0))
        plan = [
            (service, how)
            for how in ("kill", "stop")
            for service in ("api", "worker", "redis", "mongodb")
        ]
        for service, how in plan:
            await asyncio.sleep(3)
            await asyncio.to_thread(hit, service, how)
        await asyncio.sleep(3)
        generator.stop()
        await load
        await asyncio.to_thread(wait, stack.ready, 120, "the api ready again")
        await generator.settle(120)
        await generator.aclose()
        return generator.ledger

    ledger = asyncio.run(run())
    drained_after = wait_drained(stack, 240)
    verdict = verify(stack, ledger, reward=1)
    print(
        f"compose faults {faults}: {verdict.accepted} clicks accepted, drained after"
        f" {drained_after:.1f} s, lost {verdict.lost}, doubled {verdict.doubled}"
    )
    assert len(faults) == 8
    assert verdict.accepted > 100
    assert (verdict.lost, verdict.doubled) == (0, 0), verdict.problems[:20]
    assert verdict.not_completed == 0
    assert verdict.dead_letters == 0


def test_a_worker_stopped_with_sigterm_finishes_its_batch_first(stack: ComposeStack) -> None:
    """SIGTERM while a batch is being applied: the container exits 0 after finishing it."""
    headers = sign_up(stack, "compose-bob")
    with stack.redis_client() as client:
        # Hold the batch in the worker: MongoDB away, so the job retries in place.
        mongo = stack.running("mongodb")[0]
        podman("stop", "--time", "5", mongo)
        answer = httpx.post(
            f"{stack.api_url}/api/mining/click", headers={**headers, "Idempotency-Key": "held"},
            timeout=10,
        )  # fmt: skip
        assert answer.status_code == 202
        wait(lambda: client.zcard(QueueKeys.started) == 1, 30, "the batch started in a worker")
        worker = stack.running("worker")[0]
        stopping = subprocess.Popen(
            ["podman", "stop", "--time", "90", worker], env=podman_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(2)
        podman("start", mongo)
        stopping.communicate(timeout=120)
        assert stopping.returncode == 0
        state = podman("inspect", worker, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert state == "0", "exited by itself after the batch, not killed after the grace"
        record = client.hgetall(Keys.click(_user_of(headers), "held"))
        assert record.get("s") == "completed", record
        assert client.zcard(QueueKeys.started) == 0
    podman("start", worker)


def _user_of(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])
