"""gzip for responses of at least ``GZIP_MIN_BYTES`` bytes, when the client accepts it.

Starlette's GZipMiddleware does the compressing; it skips ``text/event-stream`` (an event must
reach the client when it is sent, not when a compressor's buffer fills) and already-compressed
types. What it does not do is read ``Accept-Encoding`` properly: it compresses whenever the
header contains "gzip", also for ``gzip;q=0`` (which refuses it). Here the header is parsed.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware, GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LEVEL = 6  # zlib's default: most of level 9's gain for far less CPU
VARY = (b"vary", b"Accept-Encoding")


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110, section 12.5.3)."""
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
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


class Compression(GZipMiddleware):
    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not accepts_gzip(Headers(scope=scope).get("accept-encoding", "")):
            # Plain answer; it still varies with Accept-Encoding, so caches keep the two apart.
            async def send_plain(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", []).append(VARY)
                await send(message)

            await self.app(scope, receive, send_plain)
            return
        responder = GZipResponder(
            self.app,
            self.minimum_size,
            compresslevel=self.compresslevel,
            thread_minimum_size=self.thread_minimum_size,
            exclude_content_types=self.exclude_content_types,
        )
        await responder(scope, receive, send)
