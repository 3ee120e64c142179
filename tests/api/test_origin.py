"""Cookie-authenticated state changes from another site are 403 (login CSRF aside: JSON only)."""

from __future__ import annotations

import pytest

from crypto_mine.api.http.auth import COOKIE, issue_token
from tests.support.api import Api

pytestmark = pytest.mark.anyio

CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "http://api.evil.example"},
    {"Origin": "null"},
    # Sec-Fetch-Site is what a current browser sends; it wins over a matching Origin.
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://api"},
]
FROM_HERE = [
    {},
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://api"},
    {"Origin": "http://API:80"},
]


def cookie_click(api: Api, key: str, headers: dict[str, str]) -> dict[str, str]:
    api.client.cookies.set(COOKIE, issue_token(api.settings, "u1"))
    return {"Idempotency-Key": key, **headers}


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cookie_click_from_another_site_is_403(api: Api, headers: dict[str, str]) -> None:
    response = await api.client.post("/api/mining/click", headers=cookie_click(api, "k", headers))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "cross_site_request"
    assert (await api.status("u1", "k")).status_code == 404  # nothing was queued


@pytest.mark.parametrize("headers", FROM_HERE)
async def test_cookie_click_from_this_site_is_taken(api: Api, headers: dict[str, str]) -> None:
    response = await api.client.post("/api/mining/click", headers=cookie_click(api, "k", headers))
    assert response.status_code == 202, response.text


async def test_bearer_tokens_and_reads_are_not_checked(api: Api) -> None:
    """No other site can make a browser send an Authorization header; reads change nothing."""
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await api.click("u1", "k", **evil)).status_code == 202
    api.client.cookies.set(COOKIE, issue_token(api.settings, "u1"))
    assert (await api.client.get("/api/mining/status", headers=evil)).status_code == 200
