"""The general limit: every ``/api/*`` route, per client IP (``API_RATE_LIMIT`` per
``API_RATE_LIMIT_WINDOW`` seconds, the documents' 100 per minute).

A token bucket in Redis per client IP (``lua/api_limit.lua``): ``API_RATE_LIMIT`` requests at
once, refilled at ``API_RATE_LIMIT`` per window. Concurrent requests are coalesced as clicks
are: while one script call is in flight, the requests that arrive wait, and the next call
decides all of them, so under load the limit costs a fraction of a round trip. Answers carry
the same ``RateLimit``/``RateLimit-Policy`` headers as the click limits (policy ``"api"``);
beyond the limit: ``429`` + ``Retry-After`` with a JSON body (a WebSocket handshake is refused
the same way). Not limited: ``/api/health``, ``/api/metrics``, CORS preflights, and
``POST /api/mining/click``, which has its own global, per-user and per-IP buckets, taken in the
same Redis step as the rest of its admission (``admission.py``).

With Redis unreachable the limit lets requests through (logged): the routes that need Redis
answer ``503`` themselves, and the balance is still served from MongoDB.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from crypto_mine.common import scripts
from crypto_mine.common.metrics import REDIS_LATENCY
from crypto_mine.common.names import Keys

from .. import SCRIPTS
from ..admission import limits
from ..settings import Bucket
from .clientip import client_ip
from .errors import ApiError

log = logging.getLogger(__name__)

PREFIX = "/api/"
EXEMPT = frozenset({"/api/health", "/api/metrics"})
# Handshake answers and accepts that carry the headers too.
STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})
BATCH = 256  # most requests one script call decides
CONCURRENCY = 2  # script calls in flight per process

Script = Callable[..., Awaitable[Any]]
Decision = tuple[int, int, int, int]  # taken, tokens left, ms until full, ms to wait


class Limiter:
    """Takes one token per request from its IP's bucket, many requests per script call."""

    def __init__(self, redis: Redis, bucket: Bucket) -> None:
        self.script: Script = redis.register_script(scripts.load(SCRIPTS, "api_limit.lua"))
        self.args = [str(bucket.rate), str(bucket.burst)]
        self._pending: list[tuple[str, asyncio.Future[Decision]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, ip: str) -> Decision:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._pending.append((ip, future))
        if self._running < CONCURRENCY:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:BATCH]
                del self._pending[:BATCH]
                started = time.perf_counter()
                try:
                    results = await self.script(
                        keys=[Keys.api_bucket(ip) for ip, _ in batch], args=self.args
                    )
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                REDIS_LATENCY.labels("api_limit").observe((time.perf_counter() - started) * 1000)
                for (_, future), result in zip(batch, results, strict=True):
                    taken, left, full_ms, wait_ms = (int(value) for value in result)
                    if not future.done():
                        future.set_result((taken, left, full_ms, wait_ms))
        finally:
            self._running -= 1


def limited_path(scope: Scope) -> bool:
    path: str = scope["path"]
    if not path.startswith(PREFIX) or path in EXEMPT:
        return False
    if scope["type"] == "websocket":
        return True
    method = scope["method"]
    return method != "OPTIONS" and not (method == "POST" and path == "/api/mining/click")


class ApiLimitMiddleware:
    def __init__(self, app: ASGIApp, redis: Redis, bucket: Bucket, trusted_proxies: int) -> None:
        self.app = app
        self.bucket = bucket
        self.trusted_proxies = trusted_proxies
        self.limiter = Limiter(redis, bucket)
        self.policy = limits.policy(bucket)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not limited_path(scope):
            await self.app(scope, receive, send)
            return
        ip = client_ip(HTTPConnection(scope), self.trusted_proxies)
        try:
            taken, remaining, reset_ms, wait_ms = await self.limiter.take(ip)
        except (RedisError, TimeoutError) as error:
            log.warning("general api limit not checked (Redis: %s); request let through", error)
            await self.app(scope, receive, send)
            return
        headers = limits.bucket_headers(self.bucket, remaining, reset_ms, wait_ms, self.policy)
        if not taken:
            await self._refuse(scope, receive, send, headers)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] in STARTS:
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        error = ApiError(
            429,
            "rate_limited",
            f"The api rate limit ({self.bucket.burst} requests per "
            f"{round(self.bucket.burst / self.bucket.rate)} s per client) is exhausted; "
            f"retry after {headers['Retry-After']} s.",
            headers,
            limit=self.bucket.name,
        )
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await WebSocketClose(1008, "rate limited")(scope, receive, send)
            return
        await error.response()(scope, receive, send)
