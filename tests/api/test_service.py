"""Health, readiness, performance summary, queue stats, metrics, mobile metadata, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.servers import MongoServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def test_liveness_and_readiness(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "mongodb": "ok"}}


async def test_health_summarises_performance_and_queue(api: Api) -> None:
    for i in range(3):
        await api.click("u1", f"k{i}")
    body = (await api.client.get("/api/health")).json()
    assert body["status"] == "ok"
    assert body["performance"]["totalRequests"] >= 3
    assert body["performance"]["p95ResponseTimeMs"] > 0
    assert body["queue"]["depth"] == 3


async def test_health_speaks_the_scaling_guides_names_on_its_path_too(api: Api) -> None:
    for i in range(4):
        await api.click("u1", f"k{i}", {"clicks": 2})
    guide = (await api.client.get("/health")).json()
    ours = (await api.client.get("/api/health")).json()
    # The guide's example: {"status": "ok", "performance": {"avgResponseTime", "errorRate",
    # "totalRequests"}, "queue": {"pending", "workers"}}.
    for body in (guide, ours):
        assert body["status"] == "ok"
        performance = body["performance"]
        assert performance["avgResponseTime"] > 0
        assert performance["errorRate"] == 0
        assert performance["totalRequests"] >= 4
        assert body["queue"]["pending"] == body["queue"]["depth"] == 8
        assert body["queue"]["workers"] == 0
    assert guide["performance"]["totalRequests"] == ours["performance"]["totalRequests"] - 1
    assert guide.keys() == ours.keys()


async def test_queue_stats(api: Api) -> None:
    await api.click("u1", "a", {"clicks": 4})
    stats = (await api.client.get("/api/queue/stats")).json()
    assert stats["queue"] == "mining-clicks"
    assert (stats["depth"], stats["jobs"], stats["inProgress"], stats["failed"]) == (4, 1, 0, 0)
    assert 0 <= stats["lagSeconds"] < 5


async def test_metrics_use_the_spec_names(api: Api) -> None:
    await api.click("u1", "a")
    await api.click("u1", "a")
    await api.client.post("/api/mining/click")
    text = (await api.client.get("/api/metrics")).text
    for status in ("202", "200", "401"):
        assert f'mining_click_requests_total{{status="{status}"}}' in text
    assert 'http_request_duration_seconds_bucket{le="0.001",route="/api/mining/click"}' in text
    assert 'redis_latency_ms_bucket{le="0.25",operation="admit"}' in text


async def test_mobile_metadata_from_environment(start_api: Any) -> None:
    api: Api = await start_api(
        MOBILE_APK_DOWNLOAD_URL="https://cdn.example.com/app-release.apk",
        MOBILE_APK_VERSION="1.4.2",
        MOBILE_APK_BUILD_DATE="2026-11-01",
        MOBILE_APK_RELEASE_NOTES="Faster mining.",
    )
    answer = await api.client.get("/api/mobile-app/apk")
    again = await api.client.get(
        "/api/mobile-app/apk", headers={"If-None-Match": answer.headers["ETag"]}
    )
    assert again.status_code == 304  # a revalidation of an unchanged release
    assert again.headers["ETag"] == answer.headers["ETag"]
    body = answer.json()
    assert body == {
        "available": True,
        "downloadUrl": "https://cdn.example.com/app-release.apk",
        "version": "1.4.2",
        "buildDate": "2026-11-01",
        "releaseNotes": "Faster mining.",
    }


async def test_mobile_metadata_when_unset(api: Api) -> None:
    assert (await api.client.get("/api/mobile-app/apk")).json()["available"] is False


async def test_openapi_lists_every_route(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    routes = {route.path for route in api.client._transport.app.routes}  # type: ignore[attr-defined]
    assert routes <= set(document["paths"])


async def test_unknown_route_and_method_are_json(api: Api) -> None:
    missing = await api.client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = await api.client.get("/api/mining/click")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(("use_queue", "status"), [("true", 200), ("false", 503)])
async def test_readiness_needs_mongodb_only_where_clicks_do(
    start_api: Any, tmp_path: Path, use_queue: str, status: int
) -> None:
    """With the queue, a MongoDB outage keeps the api in its Service: clicks still queue."""
    mongo = MongoServer(tmp_path / "mongo").start()
    try:
        api: Api = await start_api(
            MONGODB_URI=mongo.uri, DB_SERVER_SELECTION_TIMEOUT=300, USE_QUEUE=use_queue
        )
        mongo.stop()
        ready = await api.client.get("/readyz")
        assert ready.status_code == status
        assert ready.json()["checks"]["mongodb"].startswith("unavailable")
        assert ready.json()["checks"]["redis"] == "ok"
        if use_queue == "true":
            assert (await api.click("u1", "while-mongodb-is-down")).status_code == 202
    finally:
        mongo.stop()
