"""CORS_ORIGIN: the browser origins allowed besides the api's own, on every route (the click's
hot path included); none configured, no CORS header at all."""

from __future__ import annotations

from typing import Any

import pytest

from crypto_mine.common.settings import SettingsError
from tests.support.api import Api

pytestmark = pytest.mark.anyio

GAME = "https://game.example.com"
EVIL = "https://evil.example.com"


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization,idempotency-key"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_preflights_from_listed_origins_are_answered_before_any_limit(
    start_api: Any,
) -> None:
    api: Api = await start_api(CORS_ORIGIN=f"{GAME}, https://m.example.com", API_RATE_LIMIT=1)
    for _ in range(3):
        answer = await api.client.options("/api/mining/click", headers=preflight(GAME))
        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == GAME
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        allowed = answer.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "idempotency-key", "content-type"} <= set(allowed.split(", "))
        assert "RateLimit" not in answer.headers  # preflights are not counted
    assert (await api.client.get("/api/queue/stats")).status_code == 200

    refused = await api.client.options("/api/mining/click", headers=preflight(EVIL))
    assert refused.status_code == 400
    body = refused.json()
    assert body["error"] == "cors_refused"
    assert "origin" in body["detail"]
    assert "Access-Control-Allow-Origin" not in refused.headers
    wrong = await api.client.options("/api/mining/click", headers=preflight(GAME, "DELETE"))
    assert wrong.status_code == 400
    assert "method" in wrong.json()["detail"]


async def test_answers_to_listed_origins_expose_what_a_client_reads(start_api: Any) -> None:
    api: Api = await start_api(CORS_ORIGIN=GAME)
    click = await api.click("u1", "k1", {"clicks": 1}, Origin=GAME)  # the hot path
    assert click.status_code == 202
    assert click.headers["Access-Control-Allow-Origin"] == GAME
    assert click.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {h.strip().lower() for h in click.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ratelimit", "ratelimit-policy", "retry-after", "location", "etag"} <= exposed
    assert {"idempotent-replayed"} <= exposed
    status = await api.client.get("/api/mining/status", headers={**api.auth("u1"), "Origin": GAME})
    assert status.headers["Access-Control-Allow-Origin"] == GAME
    assert "Origin" in status.headers["Vary"]

    other = await api.click("u1", "k2", {"clicks": 1}, Origin=EVIL)
    assert other.status_code == 202  # browsers, not the api, keep the answer from the page
    assert "Access-Control-Allow-Origin" not in other.headers
    plain = await api.click("u1", "k3", {"clicks": 1})
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_without_cors_origin_there_is_no_cors(api: Api) -> None:
    answer = await api.client.options("/api/mining/click", headers=preflight(GAME))
    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"
    click = await api.click("u1", "k1", {"clicks": 1}, Origin=GAME)
    assert click.status_code == 202
    assert not [h for h in click.headers if h.lower().startswith("access-control")]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*", "may not be '\\*'"),
        (f"{GAME}, *", "may not be '\\*'"),
        (f"{GAME}/app", "no path"),
        ("game.example.com", "http\\(s\\) URL"),
    ],
)
def test_cors_origin_values_are_checked(make_settings: Any, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"CORS_ORIGIN.*{problem}"):
        make_settings(CORS_ORIGIN=value)


def test_cors_origins_are_normalized(make_settings: Any) -> None:
    settings = make_settings(
        CORS_ORIGIN=f" HTTPS://Game.Example.com/ ,{GAME},http://localhost:3000"
    )
    assert settings.http.cors_origins == (GAME, "http://localhost:3000")
