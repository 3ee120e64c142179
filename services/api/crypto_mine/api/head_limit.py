"""A bound on the request head (request line + headers): ``431`` beyond ``MAX_HEADER_BYTES``.

uvicorn's httptools protocol buffers a request's head without any limit, so one client could
make a worker hold megabytes per connection. This protocol counts the bytes of each head as
they arrive (up to the blank line that ends it) and answers a JSON ``431`` and closes the
connection as soon as the bound is passed, before anything reaches the application. Requests
that are not HTTP get a JSON ``400`` instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import os

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from crypto_mine.common.settings import Env

ENV = "MAX_HEADER_BYTES"
DEFAULT = 16_384
HEAD_END = b"\r\n\r\n"


def limit_from_env() -> int:
    return Env(os.environ).int(ENV, DEFAULT, min=1024, max=1_048_576)


def error_response(status: int, reason: str, code: str, detail: str) -> bytes:
    """A complete JSON error answer that closes the connection."""
    body = orjson.dumps({"error": code, "detail": detail})
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/json\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class HeadLimitProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads larger than ``MAX_HEADER_BYTES``."""

    max_head_bytes = limit_from_env()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            window = self._tail + data
            end = window.find(HEAD_END)
            if end < 0:
                size = self._head_bytes + len(data)
            else:
                size = self._head_bytes + end + len(HEAD_END) - len(self._tail)
            if size > self.max_head_bytes:
                self._refused = True
                self.transport.write(
                    error_response(
                        431,
                        "Request Header Fields Too Large",
                        "request_header_fields_too_large",
                        f"The request line and headers exceed {self.max_head_bytes} bytes.",
                    )
                )
                self.transport.close()
                return
            if end < 0:
                self._head_bytes = size
                self._tail = window[-(len(HEAD_END) - 1) :]
            else:
                self._reading_head = False
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""

    def send_400_response(self, msg: str) -> None:
        """Unparseable HTTP gets a JSON ``400`` too, like every other error."""
        self.transport.write(error_response(400, "Bad Request", "bad_request", msg))
        self.transport.close()
