"""gzip or deflate for responses of at least ``GZIP_MIN_BYTES`` bytes, as the client accepts.

Starlette's GZipMiddleware does the compressing; it skips ``text/event-stream`` (an event must
reach the client when it is sent, not when a compressor's buffer fills) and already-compressed
types. What it does not do is read ``Accept-Encoding`` properly (it compresses whenever the
header contains "gzip", also for ``gzip;q=0``, which refuses it) or offer ``deflate``. Here the
header is parsed (RFC 9110, section 12.5.3): the coding with the highest weight wins, gzip on a
tie; ``deflate`` is the zlib format (RFC 1950), as HTTP means it.
"""

from __future__ import annotations

import zlib

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware, GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LEVEL = 6  # zlib's default: most of level 9's gain for far less CPU
VARY = (b"vary", b"Accept-Encoding")
GZIP = "gzip"
DEFLATE = "deflate"
# The codings offered, in order of preference on equal weights, with their other names.
CODINGS = {GZIP: (GZIP, "x-gzip"), DEFLATE: (DEFLATE,)}


def weights_of(header: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.strip().lower()] = weight
    return weights


def chosen_coding(header: str) -> str | None:
    """The content coding to answer with for an ``Accept-Encoding`` value; None: identity."""
    weights = weights_of(header)
    best, best_weight = None, 0.0
    for coding, names in CODINGS.items():
        named = [weights[name] for name in names if name in weights]
        weight = max(named) if named else weights.get("*", 0.0)
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


class DeflateResponder(GZipResponder):
    """Starlette's gzip responder with a zlib compressor: it relies on the responder making its
    compressor in ``compressor`` (cached in ``_compressor``) and naming ``content_encoding``;
    ``tests/api/test_compression.py`` decodes its answers as the zlib format."""

    content_encoding = DEFLATE

    @property
    def compressor(self) -> zlib._Compress:
        if self._compressor is None:
            self._compressor = zlib.compressobj(self.compresslevel, zlib.DEFLATED, zlib.MAX_WBITS)
        return self._compressor


RESPONDERS: dict[str, type[GZipResponder]] = {GZIP: GZipResponder, DEFLATE: DeflateResponder}


class Compression(GZipMiddleware):
    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        coding = chosen_coding(Headers(scope=scope).get("accept-encoding", ""))
        if coding is None:
            # Plain answer; it still varies with Accept-Encoding, so caches keep the two apart.
            async def send_plain(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", []).append(VARY)
                await send(message)

            await self.app(scope, receive, send_plain)
            return
        responder = RESPONDERS[coding](
            self.app,
            self.minimum_size,
            compresslevel=self.compresslevel,
            thread_minimum_size=self.thread_minimum_size,
            exclude_content_types=self.exclude_content_types,
        )
        await responder(scope, receive, send)
