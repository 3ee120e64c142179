"""Bounds on what a client may make a connection hold: head size, and time to send a request.

uvicorn's httptools protocol buffers a request head without any limit and waits for the rest of
a request for as long as the client likes, so one client could make a worker hold megabytes
per connection, or hold connections open with half a header (slowloris). This protocol:

- counts the bytes of **every** request's head (request line + headers), also of requests
  pipelined behind another one in the same read, and answers a JSON ``431`` and closes the
  connection once one passes ``MAX_HEADER_BYTES``. The head that goes on at the start of a read
  is counted as raw bytes before the parser sees them (a header still arriving is never
  buffered past the bound); a head that begins inside a read is measured by what the parser
  handed over (URL and headers) before the application sees it, and the unfinished one a read
  ends with, by the bytes after the read's last complete head;
- gives a request ``HEADER_TIMEOUT_SECONDS`` from its first byte (or from the connection's
  opening, for the first request) to the end of its head, and ``BODY_TIMEOUT_SECONDS`` from
  there to the end of its body: past either, a JSON ``408`` (or, when an answer is already under
  way, nothing) and the connection is closed. Idle keep-alive connections are uvicorn's
  (``timeout_keep_alive``); a response that streams for long (event streams) is not limited;
- answers bytes that are not HTTP with a JSON ``400`` instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import orjson

# uvicorn's protocol classes are its internals (its public interface is the import string of
# --http, which may name a class): the bounds need the parser's callbacks, which no public hook
# reaches. What is relied on: the callbacks and methods overridden below, and the attributes read
# (url, headers, cycle, transport, loop). tests/api/test_http_limits.py pins both, against a
# real uvicorn process and by the names and signatures of uvicorn's class.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from crypto_mine.common.settings import Env

DEFAULT = 16_384
HEAD_END = b"\r\n\r\n"
HEADER_OVERHEAD = 4  # ": " and CRLF around each header the parser hands over


@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int = DEFAULT
    head_timeout: float = 10.0
    body_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> HttpLimits:
        env = env or Env(os.environ)
        return cls(
            max_head_bytes=env.int("MAX_HEADER_BYTES", DEFAULT, min=1024, max=1_048_576),
            head_timeout=env.float("HEADER_TIMEOUT_SECONDS", cls.head_timeout, min=0.1, max=600),
            body_timeout=env.float("BODY_TIMEOUT_SECONDS", cls.body_timeout, min=0.1, max=600),
        )


def error_response(status: int, reason: str, code: str, detail: str) -> bytes:
    """A complete JSON error answer that closes the connection."""
    body = orjson.dumps({"error": code, "detail": detail})
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/json\r\n"
        + b"x-content-type-options: nosniff\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class HeadTooLarge(Exception):
    """Raised from a parser callback: stops the parser at once."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the bounds of this module."""

    limits = HttpLimits.from_env()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._max_head_bytes = self.limits.max_head_bytes
        self._in_head = True  # between a request's first byte (or none yet) and its head's end
        self._head_bytes = 0  # raw bytes of the head going on at the start of a read
        self._tail = b""  # its last bytes: a CRLFCRLF may straddle two reads
        self._began = False  # a request began after another one ended in the current read
        self._ended = False  # a request ended in the current read
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._part = "head"
        self._arm(self.limits.head_timeout, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._began = self._ended = False
        if self._in_head:
            tail = self._tail
            window = tail + data if tail else data
            end = window.find(HEAD_END)
            taken = len(data) if end < 0 else end + len(HEAD_END) - len(tail)
            if self._head_bytes + taken > self._max_head_bytes:
                self._refuse_head()
                return
            if end < 0:
                self._head_bytes += taken
                self._tail = window[-(len(HEAD_END) - 1) :]
        super().data_received(data)
        if self._refused or not (self._in_head and self._began):
            return
        # A head began inside this read and did not end: at most what follows the read's last
        # complete head (a body may be counted with it; the bound only gets tighter).
        last = data.rfind(HEAD_END)
        self._head_bytes = len(data) - (0 if last < 0 else last + len(HEAD_END))
        self._tail = data[-(len(HEAD_END) - 1) :]
        if self._head_bytes > self._max_head_bytes:
            self._refuse_head()

    # Parser callbacks (three per request: the parser's per-header calls stay uvicorn's own) --

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A request that begins after another one ended in this read: its head was not
        # counted before the parser saw it.
        self._in_head, self._began = True, self._ended
        self._head_bytes, self._tail = 0, b""
        self._arm(self.limits.head_timeout, "head")

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._began and self._head_size() > self._max_head_bytes:
            # A head that began inside a read and ended in it: never handed to the application.
            self._refuse_head()
            raise HeadTooLarge
        self._arm(self.limits.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        self._in_head, self._ended, self._head_bytes, self._tail = True, True, 0, b""

    def _head_size(self) -> int:
        """The bytes of the head the parser just handed over (URL and headers)."""
        return len(self.url) + sum(
            len(name) + len(value) + HEADER_OVERHEAD for name, value in self.headers
        )

    def send_400_response(self, msg: str) -> None:
        """Unparseable HTTP gets a JSON ``400`` too, like every other error."""
        if self._refused:  # a callback stopped the parser: its answer is written
            return
        self._close_with(error_response(400, "Bad Request", "bad_request", msg))

    # Bounds ----------------------------------------------------------------------------------

    def _refuse_head(self) -> None:
        limit = self.limits.max_head_bytes
        detail = f"The request line and headers exceed {limit} bytes."
        self._close_with(
            error_response(
                431,
                "Request Header Fields Too Large",
                "request_header_fields_too_large",
                detail,
            )
        )

    # One timer per connection, moved lazily: most requests only move the deadline.

    def _arm(self, seconds: float, part: str) -> None:
        self._deadline = self.loop.time() + seconds
        self._part = part
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            return
        part = self._part
        seconds = self.limits.head_timeout if part == "head" else self.limits.body_timeout
        self._close_with(
            error_response(
                408,
                "Request Timeout",
                "request_timeout",
                f"The request {part} did not arrive within {seconds:g} s.",
            )
        )

    def _close_with(self, answer: bytes) -> None:
        """Write ``answer`` unless another answer is under way on the connection; close it."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if not answering:
            self.transport.write(answer)
        self.transport.close()
