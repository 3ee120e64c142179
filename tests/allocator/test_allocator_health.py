"""The user-id guide's health check on the allocator (``/health`` generates a test id, while
the liveness probe ``/healthz`` allocates nothing), and the guide's metric names, read by its
two alerts on a real Prometheus scraping a real allocator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from devstack.servers import MongoServer, wait_until
from tests.allocator.processes import AllocatorProcess, counter_value, metric_value
from tests.monitoring.livestack import Prometheus
from tests.support.allocator import AUTH

GENERATED = "user_id_generation_total"
ERRORS = "user_id_generation_errors_total"
# The guide's alerts. HighErrorRate names the counter without `_total`, which no Prometheus
# client exposes for a counter: here with the suffix every client gives it.
HIGH_ERROR_RATE = f"rate({ERRORS}[5m]) > 0.01"
LOW_THROUGHPUT = "rate(user_id_generation_total[5m]) < 100"


@pytest.fixture
def service(own_mongo: MongoServer, tmp_path: Path) -> Iterator[AllocatorProcess]:
    env = {"ID_COUNTER_NAME": "health", "ID_MONGO_TIMEOUT_MS": "300", "ID_ALLOCATOR_MODE": "strict"}
    process = AllocatorProcess(tmp_path, own_mongo.uri, env).start()
    yield process.wait_ready()
    process.stop()


def test_health_generates_a_test_id_and_liveness_allocates_nothing(
    own_mongo: MongoServer, service: AllocatorProcess
) -> None:
    for _ in range(3):
        assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    assert counter_value(own_mongo.uri, "health") in (None, 0)
    assert metric_value(service.metrics(), GENERATED) == 0

    first = httpx.get(f"{service.url}/health")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"status", "timestamp", "user_id_generation", "test_id"}
    assert (body["status"], body["user_id_generation"]) == ("healthy", "working")
    age = datetime.now(UTC) - datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert 0 <= age.total_seconds() < 5
    assert first.headers["Cache-Control"] == "no-store"
    second = httpx.get(f"{service.url}/health").json()
    ids = httpx.post(f"{service.url}/v1/ids?count=3", headers=AUTH).json()["ids"]
    # Strict mode: consecutive ids; each health check used one of them up.
    assert [int(body["test_id"]), int(second["test_id"])] == [1, 2]
    assert ids == [3, 4, 5]
    assert counter_value(own_mongo.uri, "health") == 5
    assert metric_value(service.metrics(), GENERATED) == 5


def test_health_fails_as_json_when_no_id_can_be_generated(
    own_mongo: MongoServer, service: AllocatorProcess
) -> None:
    own_mongo.stop()
    answer = httpx.get(f"{service.url}/health", timeout=10)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    body = answer.json()
    assert (body["status"], body["user_id_generation"]) == ("unhealthy", "failing")
    assert body["error"] == "unavailable"
    assert "counter" in body["detail"]
    assert "test_id" not in body
    assert httpx.get(f"{service.url}/healthz").status_code == 200
    assert metric_value(service.metrics(), ERRORS) == 1
    assert metric_value(service.metrics(), GENERATED) == 0
    own_mongo.start()


def test_the_guides_alerts_read_the_guides_names(
    own_mongo: MongoServer, service: AllocatorProcess, tmp_path: Path
) -> None:
    prometheus = Prometheus(
        tmp_path / "prometheus", {"id-allocator": (f"127.0.0.1:{service.metrics_port}", "/metrics")}
    ).start()
    try:
        for _ in range(5):
            assert httpx.post(f"{service.url}/v1/ids?count=10", headers=AUTH).status_code == 200

        def seen(query: str) -> bool:
            return bool(prometheus.query(query))

        # A trickle of ids: LowThroughput's condition holds, HighErrorRate's does not.
        wait_until(lambda: seen(f"{GENERATED} >= 50") and seen(LOW_THROUGHPUT), 30, "ids seen")
        assert prometheus.query(f"rate({ERRORS}[5m])")[0]["value"][1] == "0"
        assert not prometheus.query(HIGH_ERROR_RATE)

        own_mongo.stop()
        for _ in range(3):
            assert httpx.post(f"{service.url}/v1/ids", headers=AUTH, timeout=10).status_code == 503
        wait_until(lambda: seen(HIGH_ERROR_RATE), 30, "HighErrorRate's condition")
        own_mongo.start()
    finally:
        prometheus.stop()
