"""Headers of every answer: nosniff, no-store unless the answer caches by design, HSTS on TLS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def answers(api: Api) -> dict[str, httpx.Response]:
    await api.click("u1", "k")
    return {
        "click 202": await api.click("u1", "k2"),
        "click replay 200": await api.click("u1", "k"),
        "click 401": await api.client.post("/api/mining/click", headers={"Idempotency-Key": "k"}),
        "click 400": await api.click("u1", "k3", {"clicks": 0}),
        "click 422": await api.click("u1", "k", {"clicks": 2}),
        "click status 202": await api.status("u1", "k"),
        "click status 404": await api.status("u1", "nope"),
        "queue stats": await api.client.get("/api/queue/stats"),
        "health": await api.client.get("/api/health"),
        "readyz": await api.client.get("/readyz"),
        "not found": await api.client.get("/nowhere"),
        "openapi": await api.client.get("/openapi.json"),
    }


async def test_answers_are_never_stored_and_never_sniffed(api: Api) -> None:
    for name, response in (await answers(api)).items():
        assert response.headers.get("Cache-Control") == "no-store", name
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert len(response.headers.get_list("Cache-Control")) == 1, name
        assert "Strict-Transport-Security" not in response.headers, name  # plain HTTP


async def test_the_status_and_the_page_keep_their_own_caching(api: Api) -> None:
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert status.headers["Cache-Control"].startswith("private, max-age=")
    assert status.headers["X-Content-Type-Options"] == "nosniff"
    again = await api.client.get(
        "/api/mining/status", headers={**api.auth("u1"), "If-None-Match": status.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == status.headers["Cache-Control"]
    page = await api.client.get("/")
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.headers.get_list("X-Content-Type-Options") == ["nosniff"]


def client_of(api: Api, base_url: str) -> httpx.AsyncClient:
    transport = api.client._transport  # the same app, another scheme
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def test_hsts_over_tls_only(start_api: Any) -> None:
    api: Api = await start_api(HSTS_MAX_AGE=600)
    async with client_of(api, "https://api") as tls:
        over_tls = await tls.get("/healthz")
        click = await tls.post(
            "/api/mining/click", headers={**api.auth("u1"), "Idempotency-Key": "k"}
        )
    assert over_tls.headers["Strict-Transport-Security"] == "max-age=600"
    assert click.headers["Strict-Transport-Security"] == "max-age=600"
    plain = await api.client.get("/healthz")
    assert "Strict-Transport-Security" not in plain.headers
    # Only a trusted proxy may say the client used TLS.
    claimed = await api.client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in claimed.headers


async def test_hsts_behind_a_trusted_proxy_that_terminates_tls(start_api: Any) -> None:
    api: Api = await start_api(TRUSTED_PROXY_COUNT=1)
    behind = await api.client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert behind.headers["Strict-Transport-Security"] == "max-age=31536000"
    forged_then_plain = await api.client.get(
        "/healthz", headers={"X-Forwarded-Proto": "https, http"}
    )
    assert "Strict-Transport-Security" not in forged_then_plain.headers


async def test_hsts_can_be_turned_off(start_api: Any) -> None:
    api: Api = await start_api(HSTS_MAX_AGE=0)
    async with client_of(api, "https://api") as tls:
        assert "Strict-Transport-Security" not in (await tls.get("/healthz")).headers
