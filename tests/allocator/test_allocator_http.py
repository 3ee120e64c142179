"""The allocator service over HTTP: real uvicorn processes on a real MongoDB server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crypto_mine.common.ids import AllocatorError, AllocatorUnavailable, IdAllocatorClient
from devstack.servers import MongoServer, free_port, wait_until
from tests.allocator.processes import AllocatorProcess, counter_value, metric_value
from tests.support.allocator import AUTH, TOKEN

COUNTER = "http-tests"


@pytest.fixture(scope="module")
def segment_service(
    mongo: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AllocatorProcess]:
    folder = tmp_path_factory.mktemp("allocator-http")
    service = AllocatorProcess(folder, mongo.uri, {"ID_COUNTER_NAME": COUNTER}).start()
    yield service.wait_ready()
    service.stop()


@pytest.fixture
def outage_services(
    own_mongo: MongoServer, tmp_path: Path
) -> Iterator[tuple[AllocatorProcess, AllocatorProcess]]:
    """A segment-mode and a strict-mode allocator on a MongoDB server the test may stop."""
    env = {"ID_COUNTER_NAME": "outage", "ID_MONGO_TIMEOUT_MS": "300", "ID_SEGMENT_ADAPTIVE": "0"}
    segment = AllocatorProcess(tmp_path, own_mongo.uri, env, "segment").start()
    strict = AllocatorProcess(
        tmp_path, own_mongo.uri, {**env, "ID_ALLOCATOR_MODE": "strict"}, "strict"
    ).start()
    yield segment.wait_ready(), strict.wait_ready()
    segment.stop()
    strict.stop()


def wait_ready(service: AllocatorProcess) -> None:
    def ready() -> bool:
        return httpx.get(f"{service.url}/readyz").status_code == 200

    wait_until(ready, 15, f"{service.name} /readyz")


def post_ids(service: AllocatorProcess, query: str = "") -> httpx.Response:
    return httpx.post(f"{service.url}/v1/ids{query}", timeout=10, headers=AUTH)


@pytest.mark.parametrize(
    "query",
    [
        "?count=0",
        "?count=10001",
        "?count=-1",
        "?count=abc",
        "?count=1.5",
        "?count=1e3",
        "?count=+5",
        "?count=%205",
        "?count=",
        "?count=%EF%BC%95",  # a full-width digit five
        "?count=99999999999999999999",
        "?count=1&count=2",
    ],
)
def test_bad_counts_get_a_json_400(segment_service: AllocatorProcess, query: str) -> None:
    response = post_ids(segment_service, query)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_count"
    assert "count" in body["detail"]
    assert set(body) == {"error", "detail"}


def test_counts_from_one_to_ten_thousand(segment_service: AllocatorProcess) -> None:
    one = post_ids(segment_service).json()
    assert len(one["ids"]) == 1
    batch = post_ids(segment_service, "?count=10000").json()
    ids = batch["ids"]
    assert len(ids) == len(set(ids)) == 10_000
    assert all(isinstance(i, int) for i in ids)
    assert sum(last - first + 1 for first, last in batch["ranges"]) == 10_000
    assert one["ids"][0] not in ids


def test_other_routes_and_methods_answer_json(segment_service: AllocatorProcess) -> None:
    missing = httpx.get(f"{segment_service.url}/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = httpx.get(f"{segment_service.url}/v1/ids")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("mode", ["segment", "strict"])
def test_probes_and_metrics_allocate_nothing(
    mongo: MongoServer, tmp_path: Path, counter_name: str, mode: str
) -> None:
    env = {"ID_COUNTER_NAME": counter_name, "ID_ALLOCATOR_MODE": mode}
    service = AllocatorProcess(tmp_path, mongo.uri, env).start().wait_ready()
    try:
        assert post_ids(service).status_code == 200
        before = counter_value(mongo.uri, counter_name)
        assert before is not None
        for _ in range(20):
            assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
        for _ in range(5):
            assert httpx.get(f"{service.url}/readyz").json()["status"] == "ready"
            service.metrics()
        assert counter_value(mongo.uri, counter_name) == before
        issued = metric_value(service.metrics(), f'id_allocator_ids_issued_total{{mode="{mode}"}}')
        assert issued == 1
    finally:
        service.stop()


def test_metrics_are_exposed(segment_service: AllocatorProcess) -> None:
    post_ids(segment_service, "?count=3")
    post_ids(segment_service, "?count=0")
    text = segment_service.metrics()
    for name in [
        'id_allocator_ids_issued_total{mode="segment"}',
        'id_allocator_requests_total{outcome="ok"}',
        'id_allocator_requests_total{outcome="bad_request"}',
        'id_allocator_segment_fetches_total{trigger="prefetch"}',
        "id_allocator_fetch_duration_seconds_count",
        "id_allocator_allocate_wait_seconds_count",
        "id_allocator_buffer_remaining_ids",
        "id_allocator_segment_size",
    ]:
        assert metric_value(text, name) > 0, name
    assert "# TYPE id_allocator_errors_total counter" in text
    assert "# TYPE id_allocator_buffer_waits_total counter" in text


def test_readyz_follows_mongodb(
    own_mongo: MongoServer, outage_services: tuple[AllocatorProcess, AllocatorProcess]
) -> None:
    for service in outage_services:
        assert httpx.get(f"{service.url}/readyz").status_code == 200
    own_mongo.stop()
    for service in outage_services:
        began = time.monotonic()
        response = httpx.get(f"{service.url}/readyz", timeout=10)
        assert time.monotonic() - began < 3
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"
        # Liveness does not depend on MongoDB.
        assert httpx.get(f"{service.url}/healthz").status_code == 200
    own_mongo.start()
    for service in outage_services:
        wait_ready(service)


def test_mongodb_down_gives_503_after_bounded_retries(
    own_mongo: MongoServer, outage_services: tuple[AllocatorProcess, AllocatorProcess]
) -> None:
    segment, strict = outage_services
    before = {post_ids(s).json()["ids"][0] for s in outage_services}
    own_mongo.stop()

    # Strict mode needs MongoDB for every request: 4 tries, 3 backoffs, then a 503.
    began = time.monotonic()
    response = post_ids(strict)
    elapsed = time.monotonic() - began
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "unavailable"
    assert "Traceback" not in response.text
    assert 0.35 <= elapsed < 5, elapsed
    text = strict.metrics()
    assert metric_value(text, 'id_allocator_errors_total{kind="gave_up"}') == 1
    assert metric_value(text, 'id_allocator_requests_total{outcome="unavailable"}') == 1

    # Segment mode still serves what it had reserved, then answers 503 in bounded time too.
    assert post_ids(segment, "?count=10").status_code == 200
    began = time.monotonic()
    response = post_ids(segment, "?count=10000")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert time.monotonic() - began < 5

    own_mongo.start()
    after: set[int] = set()
    for service in outage_services:
        wait_ready(service)
        response = post_ids(service, "?count=5")
        assert response.status_code == 200
        after.update(response.json()["ids"])
    assert len(after) == 10
    assert not after & before


def test_client_gets_ids_and_reports_unavailability(
    segment_service: AllocatorProcess,
) -> None:
    async def main() -> None:
        async with IdAllocatorClient(segment_service.url, timeout=2, token=TOKEN) as client:
            ids = await client.allocate(5)
            assert len(set(ids)) == 5
            assert all(isinstance(i, int) for i in ids)
            assert len(await client.allocate()) == 1
            with pytest.raises(ValueError, match="count"):
                await client.allocate(0)
        async with IdAllocatorClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
            with pytest.raises(AllocatorUnavailable, match="unreachable"):
                await client.allocate()
        # A peer that accepts the connection and never answers.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            async with IdAllocatorClient(url, timeout=0.3) as client:
                began = time.monotonic()
                with pytest.raises(AllocatorUnavailable, match="timed out"):
                    await client.allocate()
                assert time.monotonic() - began < 2

    asyncio.run(main())


def test_client_reports_503_as_unavailable_with_retry_after(
    own_mongo: MongoServer, outage_services: tuple[AllocatorProcess, AllocatorProcess]
) -> None:
    _, strict = outage_services
    own_mongo.stop()

    async def main() -> None:
        async with IdAllocatorClient(strict.url, timeout=10, token=TOKEN) as client:
            with pytest.raises(AllocatorUnavailable) as caught:
                await client.allocate(2)
            assert caught.value.retry_after == 1.0
            assert not isinstance(caught.value, ValueError)
            assert isinstance(caught.value, AllocatorError)

    asyncio.run(main())


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token-of-the-same-length-000", f"Basic {TOKEN}", TOKEN],
)
def test_ids_only_for_callers_with_the_service_token(
    segment_service: AllocatorProcess, authorization: str | None
) -> None:
    before = segment_service.metrics()
    headers = {"Authorization": authorization} if authorization is not None else {}
    refused = httpx.post(f"{segment_service.url}/v1/ids?count=10000", headers=headers, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert "ids" not in refused.json()
    issued = 'id_allocator_ids_issued_total{mode="segment"}'
    assert metric_value(segment_service.metrics(), issued) == metric_value(before, issued)
    assert post_ids(segment_service).status_code == 200


def test_metrics_are_on_their_own_port_only(segment_service: AllocatorProcess) -> None:
    assert "id_allocator_requests_total" in segment_service.metrics()
    assert httpx.get(f"{segment_service.url}/metrics", timeout=10).status_code == 404
    assert httpx.get(f"{segment_service.url}/healthz", timeout=10).status_code == 200  # no token
