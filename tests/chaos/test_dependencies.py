"""Losing Redis, MongoDB or the id-allocator, with every service a real process.

The in-process api tests cover each answer (tests/api/test_redis_down.py, test_accounts.py) and
the worker's backoff (tests/worker/test_jobs.py); here the whole stack lives through the loss:
uvicorn with two workers, a worker pod, Redis with its append-only file, and recovery without
restarting anything but the dependency that was lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from crypto_mine.common.names import Keys
from devstack.servers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("dependencies"),
        api_env={"MINING_JOB_TIMEOUT_SECONDS": "8", "DB_SERVER_SELECTION_TIMEOUT": "1000"},
        worker_env={
            "MINING_WORKER_RETRY_BUDGET": "2",
            "MINING_WORKER_HEARTBEAT_MARGIN": "2",
            "MINING_WORKER_MAINTENANCE_INTERVAL": "2",
            "DB_SERVER_SELECTION_TIMEOUT": "500",
        },
        worker_pods=1,
    ).start()
    yield running
    running.stop()


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api.url, timeout=15) as client:
        yield client


def click(http: httpx.Client, token: str, key: str, clicks: int = 1) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return http.post("/api/mining/click", headers=headers, json={"clicks": clicks})


def click_as_a_client(http: httpx.Client, token: str, key: str, clicks: int) -> httpx.Response:
    """A click sent again after a ``503`` (its ``Retry-After``), as a client does; MongoDB's
    state is never the reason (a busy machine can time the admission out)."""
    for _ in range(3):
        answer = click(http, token, key, clicks)
        if answer.status_code != 503:
            return answer
        assert "mongodb" not in answer.json()["error"], answer.text
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    return answer


def status(http: httpx.Client, token: str, key: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return http.get("/api/mining/click/status", params={"key": key}, headers=headers)


def completed(http: httpx.Client, token: str, key: str) -> bool:
    return status(http, token, key).status_code == 200


def register(http: httpx.Client, username: str) -> httpx.Response:
    return http.post("/api/auth/register", json={"username": username, "password": PASSWORD})


def test_redis_lost_is_503_fast_then_everything_recovers_with_the_data(
    stack: Stack, http: httpx.Client
) -> None:
    token = stack.token("redis-user")
    worker = stack.workers[0]
    worker.stop()  # the click accepted below waits in Redis only, unapplied
    assert click(http, token, "before", 2).status_code == 202
    stack.redis.kill9()
    started = time.monotonic()
    lost = click(http, token, "during")
    asked = status(http, token, "before")
    ready = http.get("/readyz")
    elapsed = time.monotonic() - started
    alive = http.get("/healthz")
    assert (lost.status_code, lost.json()["error"]) == (503, "redis_unavailable"), lost.text
    assert lost.headers["Retry-After"] == "1"
    assert asked.status_code == 503
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    assert alive.status_code == 200
    assert elapsed < 5, f"three answers took {elapsed:.1f}s"

    stack.redis.start()  # same port, same append-only file: the accepted click is still there
    worker.start()
    wait_until(lambda: http.get("/readyz").status_code == 200, 30, "readiness after Redis")
    assert status(http, token, "before").status_code in (200, 202)
    assert click(http, token, "during").status_code == 202
    wait_until(lambda: completed(http, token, "before"), 60, "the click accepted before")
    wait_until(lambda: completed(http, token, "during"), 60, "the click accepted after")
    balance = http.get("/api/mining/status", headers={"Authorization": f"Bearer {token}"})
    assert balance.json()["balance"] == 3


def test_mongodb_lost_keeps_every_click_queued_until_it_returns(
    stack: Stack, http: httpx.Client
) -> None:
    token = stack.token("mongo-user")
    depth = stack.queue_depth()
    stack.mongo.kill9()
    try:
        for n in range(5):
            assert click_as_a_client(http, token, f"m{n}", 2).status_code == 202
        # The click path stays in its Service: readiness needs only Redis with the queue,
        # and still reports MongoDB's state.
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["mongodb"].startswith("unavailable")
        # Longer than the worker's retry budget: the job goes back to the queue, not away.
        time.sleep(6)
        assert {status(http, token, f"m{n}").status_code for n in range(5)} == {202}
        assert stack.queue_depth() == depth + 10
        assert stack.dead_letters() == 0
    finally:
        stack.mongo.start()
    for n in range(5):
        wait_until(lambda n=n: completed(http, token, f"m{n}"), 60, f"click m{n}")  # type: ignore[misc]
    balance = http.get("/api/mining/status", headers={"Authorization": f"Bearer {token}"})
    assert (balance.json()["balance"], balance.json()["clicks"]) == (10, 10)
    client = stack.redis_client()
    try:
        assert client.hget(Keys.click("mongo-user", "m0"), "s") == "completed"
    finally:
        client.close()


def test_id_allocator_lost_is_503_for_sign_up_only(stack: Stack, http: httpx.Client) -> None:
    before = register(http, "before-loss")
    assert before.status_code == 201, before.text
    stack.allocator.stop()
    try:
        started = time.monotonic()
        refused = register(http, "during-loss")
        elapsed = time.monotonic() - started
        assert (refused.status_code, refused.json()["error"]) == (503, "id_allocator_unavailable")
        assert int(refused.headers["Retry-After"]) >= 1
        assert elapsed < 5, f"sign-up answered after {elapsed:.1f}s"
        # No account was created; everything else still works.
        login = {"username": "during-loss", "password": PASSWORD}
        assert http.post("/api/auth/login", json=login).status_code == 401
        existing = {"username": "before-loss", "password": PASSWORD}
        assert http.post("/api/auth/login", json=existing).status_code == 200
        assert click(http, before.json()["token"], "k").status_code == 202
    finally:
        stack.allocator.start().wait_ready()
    after = register(http, "during-loss")
    assert after.status_code == 201, after.text
    assert after.json()["userId"] != before.json()["userId"]
