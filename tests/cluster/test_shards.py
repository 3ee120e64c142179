"""The chart with two click shards on real pods: a Redis and a worker Deployment per shard, each
shard's clicks applied by its own workers only, every click exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crypto_mine.common.names import Collections, shard_of
from tests.support.cluster import Cluster
from tests.support.release import Release, auth, wait_for

from .conftest import new_release, remove

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def sharded(cluster: Cluster) -> Iterator[Release]:
    release = new_release(cluster, "cms")
    try:
        release.install("shards=2", "autoscaling.mode=none", "worker.replicaCount=1")
        yield release
    finally:
        remove(release)


def applied(release: Release) -> dict[str, int]:
    with release.mongo() as database:
        found: dict[str, int] = {}
        for doc in database[Collections.clicks].find({}, {"key": 1}):
            found[doc["key"]] = found.get(doc["key"], 0) + 1
        return found


def shards(release: Release) -> list[dict[str, object]]:
    answer = release.http.get(f"{release.api_url}/api/queue/stats", timeout=10)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, object]] = answer.json()["shards"]
    return listed


def test_each_shard_applies_its_own_users_clicks(sharded: Release) -> None:
    for component in ("worker", "worker-1", "redis", "redis-1"):
        deployment = sharded.get("deployment", sharded.full(component))
        assert deployment["status"].get("readyReplicas") == 1, component
    users = [str(n) for n in range(10_000, 10_008)]
    on = {user: shard_of(user, 2) for user in users}
    # Shard 1's workers stop: its users' clicks wait in its queue, shard 0's are applied.
    sharded.kubectl("scale", "deployment", sharded.full("worker-1"), "--replicas=0")
    wait_for(lambda: not sharded.pods("worker-1"), 120, "shard 1's worker gone")
    keys = {user: f"k-{user}" for user in users}
    for user, key in keys.items():
        answer = sharded.http.post(
            f"{sharded.api_url}/api/mining/click",
            headers={**auth(user), "Idempotency-Key": key},
            json={"clicks": 2},
        )
        assert answer.status_code == 202, answer.text
    first = {keys[user] for user in users if on[user] == 0}
    second = {keys[user] for user in users if on[user] == 1}
    wait_for(lambda: set(applied(sharded)) == first, 120, "shard 0's clicks applied")
    queues = shards(sharded)
    assert [q["queue"] for q in queues] == ["mining-clicks", "mining-clicks-1"]
    assert queues[1]["depth"] == 2 * len(second)
    assert queues[0]["depth"] == 0
    # Shard 1's worker back: its clicks apply too, each exactly once.
    sharded.kubectl("scale", "deployment", sharded.full("worker-1"), "--replicas=1")
    wait_for(lambda: set(applied(sharded)) == first | second, 180, "every click applied")
    assert set(applied(sharded).values()) == {1}
    with sharded.mongo() as database:
        balances = {d["_id"]: d["balance"] for d in database[Collections.balances].find()}
    assert balances == dict.fromkeys(users, 2)
