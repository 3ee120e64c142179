"""Oversized heads, bodies, slow clients and non-HTTP bytes against a real uvicorn process of
the api."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from crypto_mine.api.http.http_limits import DEFAULT, LimitedHttpProtocol
from devstack.servers import MongoServer, RedisServer
from tests.support.api import SECRET
from tests.support.sse import open_stream
from tests.support.stack import ApiProcess, rss_kib

TIMEOUT = 1.0
# What LimitedHttpProtocol takes from uvicorn's protocol class, an internal of uvicorn's.
HOOKS = {
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "send_400_response",
}
READ = ("url", "headers", "cycle", "transport", "loop")
OWN_STATE = {
    "_max_head_bytes",
    "_in_head",
    "_head_bytes",
    "_tail",
    "_began",
    "_ended",
    "_refused",
    "_timer",
    "_deadline",
    "_part",
}


@pytest.fixture(scope="module")
def api_process(
    redis_server: RedisServer, mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "REDIS_URL": redis_server.url,
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DB": "http_limits",
        "JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "1",
        "HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "MINING_EVENTS_HEARTBEAT": "0.3",
    }
    process = ApiProcess(tmp_path_factory.mktemp("api-process"), env)
    process.start().wait_ready()
    yield process
    process.stop()


def exchange(port: int, request: bytes, chunk: int = 0) -> bytes:
    """Send raw bytes (in pieces of ``chunk`` bytes when set) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            if chunk:
                for start in range(0, len(request), chunk):
                    sock.sendall(request[start : start + chunk])
                    time.sleep(0.001)
            else:
                sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except ConnectionResetError:
        pass
    return answer


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    loaded: dict[str, object] = orjson.loads(body)
    return status, loaded


def get(api: ApiProcess, **headers: str) -> httpx.Response:
    return httpx.get(f"{api.url}/healthz", headers=headers, timeout=10)


def test_ordinary_large_headers_are_served(api_process: ApiProcess) -> None:
    assert get(api_process, **{"X-Pad": "a" * 8000}).status_code == 200
    # Just under the bound, the whole head included.
    assert get(api_process, **{"X-Pad": "a" * (DEFAULT - 200)}).status_code == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(5000))
        + b"\r\n",
        b"GET /healthz?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one-huge-header", "many-headers", "huge-url"],
)
def test_oversized_heads_are_431_json(api_process: ApiProcess, request_bytes: bytes) -> None:
    status, body = status_and_json(exchange(api_process.port, request_bytes))
    assert status == 431
    assert body["error"] == "request_header_fields_too_large"


def test_a_head_trickled_in_small_pieces_is_431(api_process: ApiProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 40_000 + b"\r\n\r\n"
    status, _ = status_and_json(exchange(api_process.port, request, chunk=1000))
    assert status == 431


def test_unfinished_huge_heads_do_not_hold_memory(api_process: ApiProcess) -> None:
    """Ten connections each sending 5 MB of head that never ends: none of it is kept."""
    before = rss_kib(api_process.pid)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"c" * 5_000_000
    sockets = [socket.create_connection(("127.0.0.1", api_process.port)) for _ in range(10)]
    refused = 0
    try:
        for sock in sockets:
            sock.settimeout(5)
            try:
                sock.sendall(head)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                refused += 1
        time.sleep(0.3)
        grown = rss_kib(api_process.pid) - before
    finally:
        for sock in sockets:
            sock.close()
    assert grown < 20_000, f"resident memory grew by {grown} KiB"
    assert refused == len(sockets)
    assert get(api_process).status_code == 200


def test_bytes_that_are_not_http_are_400_json(api_process: ApiProcess) -> None:
    status, body = status_and_json(exchange(api_process.port, b"\x16\x03\x01garbage\r\n\r\n"))
    assert status == 400
    assert body["error"] == "bad_request"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_bodies_are_413_json(api_process: ApiProcess, chunked: bool) -> None:
    token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    body = b'{"clicks": 1, "pad": "' + b"x" * 100_000 + b'"}'
    head = (
        b"POST /api/mining/click HTTP/1.1\r\nHost: x\r\nIdempotency-Key: big\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Type: application/json\r\n"
    )
    if chunked:
        pieces = [body[i : i + 8192] for i in range(0, len(body), 8192)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        request = head + b"Transfer-Encoding: chunked\r\n\r\n" + payload
    else:
        request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    status, answer = status_and_json(exchange(api_process.port, request))
    assert status == 413
    assert answer["error"] == "content_too_large"


def test_keep_alive_requests_after_a_large_one_are_served(api_process: ApiProcess) -> None:
    with httpx.Client(base_url=api_process.url, timeout=10) as client:
        for n in range(20):
            pad = "d" * (DEFAULT // 2 if n % 2 else 10)
            assert client.get("/healthz", headers={"X-Pad": pad}).status_code == 200


def test_the_limit_is_set_by_max_header_bytes(
    redis_server: RedisServer, mongo_server: MongoServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "MONGODB_URI": mongo_server.uri,
        "JWT_SECRET": SECRET,
        "MAX_HEADER_BYTES": "2048",
    }
    process = ApiProcess(tmp_path, env).start().wait_ready()
    try:
        assert get(process, **{"X-Pad": "a" * 1500}).status_code == 200
        assert get(process, **{"X-Pad": "a" * 2100}).status_code == 431
    finally:
        process.stop()


def token() -> str:
    return jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")


def send_in_reads(port: int, pieces: list[bytes], pause: float = 0.3) -> bytes:
    """Send each piece as its own read of the server (a pause between), then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(sock)


def test_a_huge_head_pipelined_behind_a_request_is_refused(api_process: ApiProcess) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40_000 + b"\r\n\r\n"
    answer = exchange(api_process.port, first + second)  # one read holds both
    assert answer.count(b"HTTP/1.1 200") <= 1, answer[:300]
    assert get(api_process).status_code == 200


def test_a_pipelined_head_is_counted_across_reads(api_process: ApiProcess) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    begun = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"q" * (DEFAULT // 2)
    more = b"q" * (DEFAULT // 2 + 100)
    answer = send_in_reads(api_process.port, [first + begun, more, b"\r\n\r\n"])
    assert answer.count(b"HTTP/1.1 200") == 1, answer[:300]
    assert b"HTTP/1.1 431" in answer


def test_pipelined_ordinary_requests_are_all_served(api_process: ApiProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"o" * 3000 + b"\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(api_process.port, request * 8 + last)
    assert answer.count(b"HTTP/1.1 200") == 9


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "],
    ids=["nothing", "half-a-head"],
)
def test_a_head_that_does_not_arrive_in_time_is_408(api_process: ApiProcess, sent: bytes) -> None:
    started = time.monotonic()
    answer = exchange(api_process.port, sent)
    elapsed = time.monotonic() - started
    status, body = status_and_json(answer)
    assert (status, body["error"]) == (408, "request_timeout")
    assert TIMEOUT <= elapsed < TIMEOUT + 5


def test_a_trickled_head_does_not_get_more_time(api_process: ApiProcess) -> None:
    """A byte every 0.2 s keeps no timer alive: the head's time counts from its first byte."""
    pieces = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] + [b"X-A: b\r\n"] * 20
    started = time.monotonic()
    answer = send_in_reads(api_process.port, pieces, pause=0.2)
    status, _ = status_and_json(answer)
    assert status == 408
    assert time.monotonic() - started < TIMEOUT + 5


def test_a_body_that_does_not_arrive_in_time_is_408(api_process: ApiProcess) -> None:
    head = (
        b"POST /api/mining/click HTTP/1.1\r\nHost: x\r\nIdempotency-Key: slow\r\n"
        b"Authorization: Bearer " + token().encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    )
    started = time.monotonic()
    status, body = status_and_json(exchange(api_process.port, head + b'{"clicks"'))
    assert (status, body["error"]) == (408, "request_timeout")
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 5


@pytest.mark.anyio
async def test_a_long_event_stream_is_not_cut(api_process: ApiProcess) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, api_process.url, headers) as stream,
    ):
        await stream.event()
        beats = 0
        ended = time.monotonic() + 3 * TIMEOUT
        while time.monotonic() < ended:
            beats += len((await stream.block()).comments)
        assert beats >= 5


async def no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("no request reaches the application here")


def test_the_hooks_it_overrides_are_uvicorns() -> None:
    """An override of a method uvicorn renamed or called otherwise would silently never run."""
    overridden = {
        name
        for name, value in vars(LimitedHttpProtocol).items()
        if callable(value) and not name.startswith("_")
    }
    assert overridden == HOOKS
    for name in HOOKS:
        ours = inspect.signature(getattr(LimitedHttpProtocol, name)).parameters
        theirs = inspect.signature(getattr(HttpToolsProtocol, name)).parameters
        assert list(ours) == list(theirs), name


def test_its_own_names_are_not_uvicorns_and_what_it_reads_is() -> None:
    """Its own methods and state never replace one of uvicorn's; the attributes it reads are
    the ones uvicorn's protocol sets, once a connection is made and a request began."""
    helpers = {name for name in vars(LimitedHttpProtocol) if name.startswith("_")}
    helpers -= {name for name in helpers if name.startswith("__")}
    assert helpers
    assert not [name for name in helpers if hasattr(HttpToolsProtocol, name)]
    loop = asyncio.new_event_loop()
    try:
        protocols = []
        for cls in (HttpToolsProtocol, LimitedHttpProtocol):
            config = Config(app=no_app, log_config=None, http=cls)
            protocol = cls(config, ServerState(), {}, _loop=loop)
            protocol.connection_made(asyncio.Transport())
            protocol.on_message_begin()
            protocols.append(protocol)
        theirs, ours = protocols
        assert set(vars(ours)) - set(vars(theirs)) == OWN_STATE
        assert all(hasattr(theirs, name) for name in READ)
        assert theirs.cycle is None  # set when a head is complete; read as "no answer yet"
    finally:
        loop.close()
