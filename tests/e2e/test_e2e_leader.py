"""Leader election on a real API server, as the operator's ServiceAccount (operator/rbac.yaml):
the Lease itself, then two operator processes and a leader killed while it scales."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest
import redis

from crypto_mine.common.names import Keys
from crypto_mine.operator.kube_client import KubeClient
from crypto_mine.operator.leader import Election, LeaderElector
from devstack.servers import RedisServer

from .conftest import RunningOperator, queue_autoscaler, worker_deployment
from .kube import Cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# The Lease operator/rbac.yaml lets the operator read and renew, in its release namespace.
LEASE = "crypto-mine-operator"
RELEASE = "crypto-mine"
TARGET = "crypto-mine-worker"
POLL = 2


@pytest.fixture
def lease(cluster: Cluster, operator_account: tuple[str, str]) -> Iterator[str]:
    """No Lease before and after the test (deleted as the cluster's admin)."""
    cluster.kubectl("delete", "lease", LEASE, "-n", RELEASE, "--ignore-not-found")
    yield LEASE
    cluster.kubectl("delete", "lease", LEASE, "-n", RELEASE, "--ignore-not-found")


def holder(cluster: Cluster) -> str | None:
    spec = cluster.get("lease", LEASE, RELEASE)["spec"]
    return str(spec["holderIdentity"]) if spec.get("holderIdentity") else None


@pytest.fixture
def as_operator(operator_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's credentials for the electors of this process (KubeClient reads them)."""
    monkeypatch.setenv("KUBECONFIG", str(operator_kubeconfig))


def electors(*names: str) -> list[LeaderElector]:
    client = KubeClient()
    timings = {"duration": 3, "renew_deadline": 2, "retry_period": 0.5}
    return [LeaderElector(Election(RELEASE, LEASE, name, **timings), client) for name in names]


@pytest.mark.usefixtures("as_operator")
def test_one_leads_another_takes_over_a_silent_lease_and_a_release_hands_over(
    cluster: Cluster, lease: str
) -> None:
    async def scenario() -> None:
        a, b = electors("a", "b")
        assert await a.try_acquire_or_renew()  # creates the Lease
        assert not await b.try_acquire_or_renew()
        assert holder(cluster) == "a"
        assert a.leading()
        assert not b.leading()
        # a keeps renewing: b never takes over, however long it tries.
        for _ in range(8):
            await asyncio.sleep(0.5)
            assert await a.try_acquire_or_renew()
            assert not await b.try_acquire_or_renew()
        # a falls silent: b waits a whole lease duration of its own clock, then takes it.
        silent = time.monotonic()
        attempts = 0
        while not await b.try_acquire_or_renew():
            attempts += 1
            await asyncio.sleep(0.2)
        waited = time.monotonic() - silent
        assert attempts > 5
        assert 3 <= waited < 3 + 5, waited  # 5 s for API calls on a busy machine
        assert holder(cluster) == "b"
        assert not a.leading(), "a acts past its renew deadline"
        assert not await a.try_acquire_or_renew()
        spec = cluster.get("lease", LEASE, RELEASE)["spec"]
        assert spec["leaseTransitions"] == 1
        # b releases: a takes over at its first try, not a lease duration later.
        await b.release()
        assert not b.leading()
        assert await a.try_acquire_or_renew()
        assert holder(cluster) == "a"

    asyncio.run(scenario())


@pytest.mark.usefixtures("as_operator")
def test_racing_candidates_never_both_win(cluster: Cluster, lease: str) -> None:
    async def scenario() -> list[int]:
        winners = []
        for _ in range(5):
            cluster.kubectl("delete", "lease", LEASE, "-n", RELEASE, "--ignore-not-found")
            candidates = electors("a", "b", "c")
            won = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
            winners.append(sum(won))
            # And over a released Lease.
            leader = candidates[won.index(True)]
            await leader.release()
            won = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
            winners.append(sum(won))
        return winners

    assert asyncio.run(scenario()) == [1] * 10


def test_killing_the_leader_mid_scale_fails_over_within_a_minute(
    cluster: Cluster,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    start_operator: Callable[..., RunningOperator],
    redis_server: RedisServer,
    redis_client: redis.Redis,
    lease: str,
) -> None:
    """Two replicas, the production Lease timings (15 / 10 / 2 s): SIGKILL the leader while it
    is half-way through a scale-up (one pod per poll), then stop the next one cleanly."""
    env = {"LEADER_ELECTION": "true", "LEASE_NAMESPACE": RELEASE, "REDIS_URL": redis_server.url}
    first = start_operator(**env)
    eventually(first.leads, 30, "the first replica leading")
    second = start_operator(**env)
    assert not second.leads()
    spec = {
        "scaleTargetRef": {"name": TARGET},
        "minReplicas": 1,
        "maxReplicas": 8,
        "metric": {"source": "redis"},
        "targetDepthPerReplica": 100,
        "pollIntervalSeconds": POLL,
        "behavior": {"scaleUp": {"maxStepPods": 1}},
    }
    cluster.apply(
        worker_deployment(TARGET, 1), queue_autoscaler("worker", spec), namespace=namespace
    )

    def size() -> int:
        scale = apps.read_namespaced_deployment_scale(TARGET, namespace)
        return int(scale.spec.replicas or 0) if scale.spec else 0

    redis_client.set(Keys.queue_depth, 800)  # 8 replicas, one more per poll
    eventually(lambda: size() >= 3, 10 * POLL, "the leader scaling up")
    first.process.kill9()
    killed = time.monotonic()
    at_kill = size()
    assert at_kill < 8, "the scale-up finished before the leader was killed"
    eventually(second.leads, 60, "the standby taking over")
    took_over = time.monotonic() - killed
    eventually(lambda: size() == 8, 60, "the new leader finishing the scale-up")
    finished = time.monotonic() - killed
    assert took_over < 60
    print(
        f"\nfailover: killed at {at_kill} replicas; standby led after {took_over:.1f}s; "
        f"8 replicas after {finished:.1f}s"
    )
    log = second.log()
    assert "standing by" in log
    assert log.index("standing by") < log.index("leading: Lease") < log.index("New size")
    assert cluster.get("lease", LEASE, RELEASE)["spec"]["leaseTransitions"] == 1

    # A clean stop hands the Lease over at once: a third replica leads within seconds.
    third = start_operator(**env)
    assert not third.leads()
    second.process.signal(signal.SIGTERM)
    stopped = time.monotonic()
    eventually(third.leads, 15, "the third replica after a clean stop")
    handed_over = time.monotonic() - stopped
    assert second.process.proc is not None
    assert second.process.proc.wait(30) == 0
    print(f"clean handover: {handed_over:.1f}s")
    assert handed_over < 15 - 2, "the Lease was not released: the third waited it out"
    assert size() == 8
