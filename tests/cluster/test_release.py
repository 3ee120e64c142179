"""The chart's whole lifecycle on real pods, in order: install, use, probes, scale, autoscale,
upgrade, roll back, uninstall. The tests of this module share one release and run in order."""

from __future__ import annotations

import secrets
import time

import httpx
import jwt
import pytest

from crypto_mine.common.names import Collections, Keys
from tests.support.release import Release, auth, wait_for

pytestmark = pytest.mark.timeout(600)


def click(release: Release, user: str, key: str, clicks: int = 1) -> httpx.Response:
    return release.http.post(
        f"{release.api_url}/api/mining/click",
        headers={**auth(user), "Idempotency-Key": key},
        json={"clicks": clicks},
    )


def applied(release: Release) -> dict[tuple[str, str], int]:
    with release.mongo() as database:
        found: dict[tuple[str, str], int] = {}
        for doc in database[Collections.clicks].find({}, {"user": 1, "key": 1}):
            pair = (doc["user"], doc["key"])
            found[pair] = found.get(pair, 0) + 1
        return found


def balances(release: Release) -> dict[str, int]:
    with release.mongo() as database:
        return {d["_id"]: d["balance"] for d in database[Collections.balances].find()}


def pod_names(release: Release, component: str) -> set[str]:
    return {p["metadata"]["name"] for p in release.ready_pods(component)}


def api_endpoints(release: Release) -> list[str]:
    endpoints = release.get("endpoints", release.full("api"))
    return [
        a["ip"] for subset in endpoints.get("subsets") or [] for a in subset.get("addresses") or []
    ]


def test_install_brings_every_pod_to_ready_and_helm_test_passes(release: Release) -> None:
    started = time.monotonic()
    release.install()
    took = time.monotonic() - started
    for component in ("api", "worker", "id-allocator", "operator", "redis", "mongodb"):
        deployment = release.get("deployment", release.full(component))
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"], (
            component
        )
    assert "Phase:          Succeeded" in release.helm("test", release.name, "--timeout", "2m")
    print(f"helm install --wait: {took:.0f} s")


def test_clicks_through_the_api_service_land_in_mongodb_exactly_once(release: Release) -> None:
    sent = {(f"user{n % 5}", f"k{n}"): 1 + n % 3 for n in range(40)}
    for (user, key), clicks in sent.items():
        assert click(release, user, key, clicks).status_code == 202
    for (user, key), clicks in list(sent.items())[:10]:  # repeats answer from the record
        repeat = click(release, user, key, clicks)
        assert repeat.status_code == 200
        assert repeat.headers["Idempotent-Replayed"] == "true"
    wait_for(lambda: applied(release).keys() == sent.keys(), 120, "every click applied")
    assert set(applied(release).values()) == {1}
    expected: dict[str, int] = {}
    for (user, _), clicks in sent.items():
        expected[user] = expected.get(user, 0) + clicks
    assert balances(release) == expected
    status = release.http.get(
        f"{release.api_url}/api/mining/click/status", params={"key": "k7"}, headers=auth("user2"),
        timeout=10,
    )  # fmt: skip
    assert status.status_code == 200
    assert status.json()["status"] == "completed"


def test_a_mongodb_outage_keeps_the_api_serving_and_clicks_apply_after(release: Release) -> None:
    ready_before = api_endpoints(release)
    release.kubectl("scale", "deployment", release.full("mongodb"), "--replicas=0")
    wait_for(lambda: not release.pods("mongodb"), 90, "MongoDB gone")
    try:
        keys = [f"outage-{n}" for n in range(10)]
        for key in keys:
            assert click(release, "outage-user", key).status_code == 202
        # Readiness follows what taking clicks needs: the api stays in its Service.
        time.sleep(12)  # two readiness periods and more
        assert sorted(api_endpoints(release)) == sorted(ready_before)
        ready = release.http.get(f"{release.api_url}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"]["mongodb"] != "ok"
        with release.redis() as client:
            assert int(client.get(Keys.queue_depth) or 0) >= len(keys), "clicks wait in the queue"
    finally:
        release.kubectl("scale", "deployment", release.full("mongodb"), "--replicas=1")
    release.rolled_out("mongodb")
    wait_for(
        lambda: {("outage-user", k) for k in keys} <= applied(release).keys(),
        180,
        "the queued clicks applied once MongoDB is back",
    )


def test_kubectl_scale_of_the_worker_in_mode_none(release: Release) -> None:
    release.upgrade("autoscaling.mode=none", "worker.replicaCount=1")
    assert release.replicas("worker") == 1
    release.kubectl("scale", "deployment", release.full("worker"), "--replicas=2")
    wait_for(lambda: len(release.ready_pods("worker")) == 2, 120, "two Ready workers")


def test_mode_switches_never_collapse_the_worker_count(release: Release) -> None:
    # From none (scaled by hand to 2) to hpa, to operator, and back: the live count stays.
    for mode in ("hpa", "operator", "none"):
        extra = ["worker.replicaCount=2"] if mode == "none" else []
        release.upgrade(f"autoscaling.mode={mode}", "autoscaling.minReplicas=1", *extra)
        assert release.replicas("worker") == 2, mode


def test_the_operator_scales_workers_from_a_real_backlog_and_back(release: Release) -> None:
    release.upgrade(
        "autoscaling.mode=operator", "autoscaling.minReplicas=1", "autoscaling.maxReplicas=3",
        "autoscaling.targetDepthPerReplica=20", "autoscaling.pollIntervalSeconds=2",
        "autoscaling.behavior.scaleDown.stabilizationWindowSeconds=10",
    )  # fmt: skip
    # A backlog the workers cannot drain: MongoDB away, clicks queue.
    release.kubectl("scale", "deployment", release.full("mongodb"), "--replicas=0")
    wait_for(lambda: not release.pods("mongodb"), 90, "MongoDB gone")
    try:
        started = time.monotonic()
        for n in range(60):
            assert click(release, f"backlog{n % 6}", f"b{n}").status_code == 202
        sent = time.monotonic() - started
        wait_for(lambda: release.replicas("worker") == 3, 60, "the operator scaling to 3")
        patched = time.monotonic() - started
        wait_for(lambda: len(release.ready_pods("worker")) == 3, 120, "three Ready workers")
        print(
            f"60 clicks sent in {sent:.1f} s; from the first: replicas patched to 3 after"
            f" {patched:.1f} s, three workers Ready after {time.monotonic() - started:.1f} s"
        )
    finally:
        release.kubectl("scale", "deployment", release.full("mongodb"), "--replicas=1")
    release.rolled_out("mongodb")
    wait_for(lambda: sum(k[1].startswith("b") for k in applied(release)) == 60, 180, "drained")
    wait_for(lambda: release.replicas("worker") == 1, 120, "scaled back down after the window")
    qa = release.get("queueautoscalers.autoscaling.crypto-mine.io", release.full("worker"))
    assert qa["status"]["desiredReplicas"] == 1


def test_a_changed_setting_or_secret_rolls_the_pods_that_read_it(release: Release) -> None:
    before = {c: pod_names(release, c) for c in ("api", "worker", "id-allocator")}
    new_secret = "rotated-secret-" + secrets.token_hex(16)
    release.upgrade(f"secrets.jwt.value={new_secret}")
    for component in ("api", "worker", "id-allocator"):
        release.rolled_out(component)
        assert not pod_names(release, component) & before[component], f"{component} rolled"
    now = int(time.time())
    token = jwt.encode({"sub": "rotated", "iat": now, "exp": now + 600}, new_secret, "HS256")
    answer = release.http.post(
        f"{release.api_url}/api/mining/click",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "after-rotation"},
        timeout=10,
    )
    assert answer.status_code == 202
    assert click(release, "user1", "old-secret").status_code == 401


def test_rollback_restores_the_previous_release(release: Release) -> None:
    revision = release.revision()
    release.helm("rollback", release.name, str(revision - 1), "--wait", "--timeout", "4m")
    release.rolled_out("api")
    assert release.revision() == revision + 1
    assert click(release, "user1", "after-rollback").status_code == 202


def test_uninstall_leaves_nothing_and_the_namespace_deletes_within_a_minute(
    release: Release,
) -> None:
    qa_kind = "queueautoscalers.autoscaling.crypto-mine.io"
    assert release.kubectl("get", qa_kind, "-o", "name").strip(), "a QueueAutoscaler to let go"
    started = time.monotonic()
    release.helm("uninstall", release.name, "--wait", "--timeout", "2m", timeout=180)
    selector = f"app.kubernetes.io/instance={release.name}"

    def left() -> str:
        return release.kubectl(
            "get", "all,secrets,serviceaccounts,roles,rolebindings,networkpolicies,"
            f"poddisruptionbudgets,{qa_kind}", "-l", selector, "-o", "name", check=False,
        ).strip()  # fmt: skip

    def namespace_gone() -> bool:
        found = release.cluster.kubectl("get", "namespace", release.namespace, check=False)
        return found.returncode != 0

    def nothing_left() -> bool:
        names = left()
        if names:
            raise AssertionError(f"still there: {names.split()}")
        return True

    # Every object of the release goes, pods included: an idle worker has no batch to finish,
    # so its grace period (jobs' timeout + shutdown grace) is not what it waits for.
    try:
        wait_for(nothing_left, 90, "nothing of the release left")
    except TimeoutError as error:
        pods = release.kubectl("get", "pods", "-o", "wide", check=False)
        events = release.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)
        raise AssertionError(f"{error}\n{pods}\n{events[-3000:]}") from error
    uninstalled = time.monotonic() - started
    release.cluster.kubectl("delete", "namespace", release.namespace, "--wait=false")
    wait_for(namespace_gone, 60, f"namespace {release.namespace} deleted")
    print(
        f"uninstalled in {uninstalled:.0f} s, namespace deleted"
        f" {time.monotonic() - started - uninstalled:.0f} s later"
    )
