"""The demo page at ``/``: served with security headers, no inline script or style."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest

from crypto_mine.api.routes.page import CONTENT_SECURITY_POLICY
from crypto_mine.common.settings import SettingsError
from tests.support.api import Api

pytestmark = pytest.mark.anyio


class Inline(HTMLParser):
    """What a CSP without 'unsafe-inline' would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
            self._in_script = True
            if not found.get("src"):
                self.problems.append("script without src")
        if tag == "style":
            self.problems.append("style element")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag} {name}=")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script body")


async def test_the_page_and_its_assets_carry_the_security_headers(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy
    assert "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    for name, value in {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }.items():
        assert page.headers[name] == value
    parser = Inline()
    parser.feed(page.text)
    assert parser.problems == []
    assert [s["src"] for s in parser.scripts] == ["/static/app.js"]

    script = await api.client.get("/static/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert "Idempotency-Key" in script.text
    assert "crypto.randomUUID" in script.text
    assert 'new EventSource("/api/mining/events")' in script.text
    style = await api.client.get("/static/app.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"


async def test_unknown_assets_are_404_and_known_ones_revalidate(api: Api) -> None:
    for name in ("nope.js", "index.html", "..%2Fpage.py"):
        missing = await api.client.get(f"/static/{name}")
        assert missing.status_code == 404, name
        assert missing.json()["error"] == "not_found"
    first = await api.client.get("/static/app.js")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = await api.client.get("/static/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert first.headers["Cache-Control"] == "no-cache"


async def test_the_page_is_in_the_openapi_document_as_html(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]
    events = paths["/api/mining/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in events


class Assets(HTMLParser):
    """The ``src``/``href`` of the page's script and style, with their integrity attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" or (tag == "link" and found.get("rel") == "stylesheet"):
            self.found.append(found)


async def test_with_a_cdn_the_page_loads_versioned_assets_that_must_match(
    start_api: Callable[..., Any],
) -> None:
    api: Api = await start_api(CDN_BASE_URL="https://CDN.example.com/")
    page = await api.client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self' https://cdn.example.com;" in policy
    assert "style-src 'self' https://cdn.example.com;" in policy
    assert "connect-src 'self';" in policy  # the api itself is still only this origin
    parser = Assets()
    parser.feed(page.text)
    assert len(parser.found) == 2
    for asset in parser.found:
        url = str(asset.get("src") or asset.get("href"))
        assert url.startswith("https://cdn.example.com/static/app.")
        assert asset["crossorigin"] == "anonymous"
        # What the CDN pulls from this origin is what the integrity hash names.
        pulled = await api.client.get(url.removeprefix("https://cdn.example.com"))
        assert pulled.status_code == 200
        digest = base64.b64encode(hashlib.sha384(pulled.content).digest()).decode()
        assert asset["integrity"] == f"sha384-{digest}"
        assert pulled.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert pulled.headers["Access-Control-Allow-Origin"] == "*"
        assert pulled.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        # Another version's URL is no promise: revalidated.
        stale = await api.client.get(url.partition("?")[0] + "?v=0123456789ab")
        assert stale.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("value", ["ftp://cdn.example.com", "https://cdn.example.com/x?y=1", "cdn"])
def test_a_cdn_base_url_must_be_an_origin(make_settings: Any, value: str) -> None:
    with pytest.raises(SettingsError, match="CDN_BASE_URL"):
        make_settings(CDN_BASE_URL=value)
