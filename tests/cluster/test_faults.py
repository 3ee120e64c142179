"""Faults on real pods during a click load: api and worker pods deleted, the Redis (append-only
file on) and MongoDB containers killed; afterwards every accepted click is applied once."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from crypto_mine.pipeline.queue_stats import QueueKeys
from tests.chaos.load import Ledger, LoadGenerator
from tests.chaos.verify import verify, wait_drained
from tests.support.cluster import Cluster
from tests.support.release import Release, wait_for
from tests.support.stack import DATABASE

from .conftest import new_release, remove

# The node's address on its bridge (scripts/cluster.sh's NODE_IP): where this machine's
# requests to the api's pods come from.
NODE_IP = "10.244.0.1"

pytestmark = pytest.mark.timeout(900)


@dataclass
class Mongo:
    uri: str


@dataclass
class ReleaseStores:
    """The release's Redis and MongoDB, reached at their Service addresses."""

    release: Release

    @property
    def mongo(self) -> Mongo:
        ip = self.release.cluster_ip("mongodb")
        return Mongo(f"mongodb://{ip}:27017/?directConnection=true")

    shards = 1

    def redis_client(self, shard: int = 0) -> redis.Redis:
        return self.release.redis()

    def dead_letters(self) -> int:
        with self.redis_client() as client:
            return int(client.zcard(QueueKeys.failed))


def kill_container(release: Release, component: str) -> None:
    """SIGKILL the component's container from the node: the kubelet restarts it in its pod."""
    pod = release.pods(component)[0]
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix(
        "containerd://"
    )
    socket = release.cluster.kubeconfig.parent / "node" / "containerd" / "containerd.sock"
    subprocess.run(
        ["ctr", "--address", str(socket), "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL",
         container_id],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]

    def restarted() -> bool:
        statuses = release.pods(component)[0]["status"]["containerStatuses"][0]
        return bool(statuses["restartCount"] > restarts and statuses["ready"])

    wait_for(restarted, 120, f"{component} restarted in its pod")


def delete_pod(release: Release, component: str) -> None:
    name = random.choice(release.pods(component))["metadata"]["name"]
    release.kubectl("delete", "pod", name, "--wait=false")


@pytest.fixture(scope="module")
def faulted(cluster: Cluster) -> Iterator[Release]:
    release = new_release(cluster, "faults")
    release.install(
        "autoscaling.mode=none", "worker.replicaCount=2", "api.replicaCount=2",
        f"config.mongodbDatabase={DATABASE}",
        # The load comes from this machine, one proxy hop in front of the api as an Ingress
        # would be: it writes each simulated user's address into X-Forwarded-For.
        "api.trustedProxyCount=1", f"networkPolicy.apiFrom[0].ipBlock.cidr={NODE_IP}/32",
        "api.env.MINING_RATE_LIMIT_PER_IP=1000", "api.env.MINING_RATE_LIMIT_IP_BURST=1000",
        "worker.env.MINING_WORKER_MAINTENANCE_INTERVAL=2", "worker.env.MINING_WORKER_TTL=16",
    )  # fmt: skip
    yield release
    remove(release)


def test_no_click_lost_or_doubled_while_pods_and_stores_fail(faulted: Release) -> None:
    rng = random.Random(17)
    stores = ReleaseStores(faulted)
    done: list[str] = []
    plan = [
        ("delete api pod", lambda: delete_pod(faulted, "api")),
        ("kill redis container", lambda: kill_container(faulted, "redis")),
        ("delete worker pod", lambda: delete_pod(faulted, "worker")),
        ("kill mongodb container", lambda: kill_container(faulted, "mongodb")),
        ("delete api pod", lambda: delete_pod(faulted, "api")),
        ("delete worker pod", lambda: delete_pod(faulted, "worker")),
    ]

    async def run() -> Ledger:
        # The stack's default Redis window (5 min) outlasts the run: no late repeats here
        # (tests/chaos sends them against a 10 s window).
        generator = LoadGenerator(faulted.api_url, rng, rate=40, window=300.0, late_share=0.0)
        await generator.sign_up_many(10)
        load = asyncio.create_task(generator.run(new_user_every=6.0))
        for what, fault in plan:
            await asyncio.sleep(4)
            await asyncio.to_thread(fault)
            done.append(what)
        await asyncio.sleep(4)
        generator.stop()
        await load
        for component in ("api", "worker", "redis", "mongodb"):
            await asyncio.to_thread(faulted.rolled_out, component)
        await generator.settle(120)
        await generator.aclose()
        return generator.ledger

    started = time.monotonic()
    ledger = asyncio.run(run())
    drained_after = wait_drained(stores, 300)
    verdict = verify(stores, ledger, reward=1)
    print(
        f"pod faults {done} in {time.monotonic() - started:.0f} s: {verdict.accepted} clicks"
        f" accepted, drained after {drained_after:.1f} s, lost {verdict.lost},"
        f" doubled {verdict.doubled}, dead letters {verdict.dead_letters}"
    )
    assert len(done) == len(plan)
    assert verdict.accepted > 100
    assert (verdict.lost, verdict.doubled) == (0, 0), verdict.problems[:20]
    assert verdict.not_completed == 0
    assert verdict.dead_letters == 0
