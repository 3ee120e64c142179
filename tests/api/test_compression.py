"""gzip above GZIP_MIN_BYTES when the client accepts it; never below it, nor refused.

(The event stream is never compressed: tests/api/test_events.py, on a real server.)
"""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from crypto_mine.api.compression import accepts_gzip
from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def raw_get(api: Api, path: str, encoding: str) -> httpx.Response:
    """The response as sent: the body is not decoded by the client."""
    request = api.client.build_request("GET", path, headers={"Accept-Encoding": encoding})
    response = await api.client.send(request, stream=True)
    await response.aclose()
    return response


async def body_of(api: Api, path: str, encoding: str) -> tuple[httpx.Headers, bytes]:
    request = api.client.build_request("GET", path, headers={"Accept-Encoding": encoding})
    response = await api.client.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response.headers, raw


async def test_large_json_is_gzipped_when_accepted(api: Api) -> None:
    headers, raw = await body_of(api, "/openapi.json", "gzip, deflate")
    plain_headers, plain = await body_of(api, "/openapi.json", "identity")
    assert len(plain) > api.settings.gzip_min_bytes
    assert headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert int(headers["Content-Length"]) == len(raw) < len(plain) / 3
    assert gzip.decompress(raw) == plain
    assert "content-encoding" not in plain_headers
    assert "Accept-Encoding" in plain_headers["Vary"]  # caches keep the two apart


async def test_small_responses_and_refusals_stay_plain(api: Api) -> None:
    small = await raw_get(api, "/healthz", "gzip")
    assert len(b'{"status":"ok"}') < api.settings.gzip_min_bytes
    assert "content-encoding" not in small.headers
    for refused in ("gzip;q=0", "identity", "br", "gzip;q=0, *"):
        response = await raw_get(api, "/openapi.json", refused)
        assert "content-encoding" not in response.headers, refused
    anything = await raw_get(api, "/openapi.json", "*")
    assert anything.headers["Content-Encoding"] == "gzip"


async def test_the_threshold_is_a_setting(start_api: Any) -> None:
    api: Api = await start_api(GZIP_MIN_BYTES=100_000)
    response = await raw_get(api, "/openapi.json", "gzip")
    assert "content-encoding" not in response.headers
    everything: Api = await start_api(GZIP_MIN_BYTES=0)
    response = await raw_get(everything, "/healthz", "gzip")
    assert response.headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip ; q=0", False),
        ("br, *;q=0.1, gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_parsed(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
