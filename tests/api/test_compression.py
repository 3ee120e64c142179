"""gzip or deflate above GZIP_MIN_BYTES as the client accepts; never below it, nor refused.

(The event stream is never compressed: tests/api/test_events.py, on a real server.)
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import httpx
import pytest

from crypto_mine.api.http.compression import chosen_coding
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
    assert len(plain) > api.settings.http.gzip_min_bytes
    assert headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert int(headers["Content-Length"]) == len(raw) < len(plain) / 3
    assert gzip.decompress(raw) == plain
    assert "content-encoding" not in plain_headers
    assert "Accept-Encoding" in plain_headers["Vary"]  # caches keep the two apart


async def test_small_responses_and_refusals_stay_plain(api: Api) -> None:
    small = await raw_get(api, "/healthz", "gzip")
    assert len(b'{"status":"ok"}') < api.settings.http.gzip_min_bytes
    assert "content-encoding" not in small.headers
    for refused in ("gzip;q=0", "identity", "br", "gzip;q=0, deflate;q=0, *"):
        response = await raw_get(api, "/openapi.json", refused)
        assert "content-encoding" not in response.headers, refused
    anything = await raw_get(api, "/openapi.json", "*")
    assert anything.headers["Content-Encoding"] == "gzip"


async def test_deflate_when_the_client_prefers_it_or_takes_only_it(api: Api) -> None:
    _, plain = await body_of(api, "/openapi.json", "identity")
    for header in ("deflate", "gzip;q=0.5, deflate", "gzip;q=0, *"):
        headers, raw = await body_of(api, "/openapi.json", header)
        assert headers["Content-Encoding"] == "deflate", header
        assert "Accept-Encoding" in headers["Vary"]
        assert int(headers["Content-Length"]) == len(raw) < len(plain) / 3
        # HTTP's deflate is the zlib format (RFC 1950): a zlib header, then raw deflate.
        assert zlib.decompress(raw) == plain
        assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw[2:]).startswith(plain[:64])
    # httpx decodes it as any HTTP client does.
    decoded = await api.client.get("/openapi.json", headers={"Accept-Encoding": "deflate"})
    assert decoded.content == plain


async def test_the_threshold_is_a_setting(start_api: Any) -> None:
    api: Api = await start_api(GZIP_MIN_BYTES=100_000)
    response = await raw_get(api, "/openapi.json", "gzip")
    assert "content-encoding" not in response.headers
    everything: Api = await start_api(GZIP_MIN_BYTES=0)
    response = await raw_get(everything, "/healthz", "gzip")
    assert response.headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("gzip, deflate", "gzip"),  # equal weights: gzip
        ("deflate, gzip", "gzip"),
        ("deflate, gzip;q=0.5", "deflate"),
        ("deflate;q=0.9, gzip;q=0.8", "deflate"),
        ("x-gzip", "gzip"),
        ("*", "gzip"),
        ("*;q=0", None),
        ("gzip;q=0", None),
        ("gzip;q=0.000", None),
        ("gzip ; q=0", None),
        ("gzip;q=0, *", "deflate"),
        ("br, *;q=0.1, gzip;q=0", "deflate"),
        ("br, *;q=0.1, gzip;q=0, deflate;q=0", None),
        ("identity", None),
        ("", None),
        ("gzip;q=nonsense", None),
        ("deflate;q=nonsense, gzip;q=0.1", "gzip"),
    ],
)
def test_accept_encoding_is_parsed(header: str, coding: str | None) -> None:
    assert chosen_coding(header) == coding
