"""The api application: routes, middleware, error handlers and the clients' lifetime."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from crypto_mine.common.ids import IdAllocatorClient
from crypto_mine.common.mongo import async_mongo_client
from crypto_mine.pipeline.queue_reporter import AsyncQueueReporter

from .admission.applied import AppliedClicks
from .admission.inline import InlineApplier
from .admission.shards import Shards
from .http.api_limit import ApiLimitMiddleware
from .http.auth import Authenticator
from .http.body_limit import BodyLimitMiddleware
from .http.compression import Compression
from .http.cors import with_cors
from .http.errors import EXCEPTION_HANDLERS
from .http.hot_path import ClickHotPath, Endpoint
from .http.observability import Performance, TimingMiddleware
from .http.security_headers import SecurityHeaders
from .http.shedding import Shedding
from .openapi import OpenApiEndpoint
from .routes.accounts import AccountEndpoints
from .routes.clicks import ClickEndpoints
from .routes.events import EventEndpoint, EventFeeds
from .routes.health import HealthEndpoints
from .routes.live_socket import LiveSocket
from .routes.logout import LogoutEndpoint
from .routes.mobile import MobileEndpoint
from .routes.page import DemoPage
from .routes.status import StatusEndpoint
from .settings import ApiSettings

log = logging.getLogger(__name__)


class Api(Starlette):
    """Starlette, with layers before all of its own: one path answered there (``ClickHotPath``),
    CORS around everything when ``CORS_ORIGIN`` names origins, the load shedding in front of
    both (``Shedding``), and outside of all the headers of every answer (``SecurityHeaders``)."""

    def __init__(self, outer: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self.outer = outer
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self.outer(super().build_middleware_stack())


def create_app(settings: ApiSettings | None = None) -> Starlette:
    settings = settings or ApiSettings.from_env()
    mongo = async_mongo_client(settings.mongo)
    database = mongo[settings.mongo.database]
    auth = Authenticator(settings)
    applied = AppliedClicks(database, settings.idempotency.lookup_timeout)
    shards = Shards(settings, applied)
    redis = shards.first.redis  # the keys of no user: login attempts, the general limit
    performance = Performance()
    inline = None
    if not settings.admission.use_queue:
        log.warning(
            "USE_QUEUE=false: the api applies every click itself before answering; "
            "for development and tests only"
        )
        inline = InlineApplier(settings)
    clicks = ClickEndpoints(settings, auth, shards, applied, inline)
    status = StatusEndpoint(settings, auth, shards, database)
    feeds = EventFeeds(settings, shards, status)
    events = EventEndpoint(auth, feeds)
    live = LiveSocket(settings, auth, feeds)
    page = DemoPage(settings.http.cdn_base_url)
    allocator = IdAllocatorClient.from_settings(settings.id_allocator)
    accounts = AccountEndpoints(settings, redis, database, allocator)
    logout = LogoutEndpoint(settings, auth, shards)
    # Every process of the pod shares the pod's identity (see AsyncQueueReporter).
    reporters = [
        AsyncQueueReporter(shard.redis, f"api:{socket.gethostname()}", shard.index)
        for shard in shards.all
    ]
    health = HealthEndpoints(settings, shards, database, performance, reporters)
    openapi = OpenApiEndpoint(settings.admission.max_clicks_per_request)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for reporter in reporters:
            reporter.start()
        try:
            yield
        finally:
            for reporter in reporters:
                await reporter.stop()
            await feeds.close()
            if inline is not None:
                inline.close()
            await allocator.aclose()
            await shards.close()
            await mongo.close()

    routes = [
        Route("/api/auth/register", accounts.register, methods=["POST"]),
        Route("/api/auth/login", accounts.login, methods=["POST"]),
        Route("/api/auth/logout", logout.logout, methods=["POST"]),
        # POST is answered by ClickHotPath before routing; the route answers other methods (405).
        Route("/api/mining/click", clicks.click, methods=["POST"]),
        Route("/api/mining/click/status", clicks.status, methods=["GET"]),
        Route("/api/mining/status", status.get),
        Route("/api/mining/events", events.stream, methods=["GET"]),
        WebSocketRoute("/api/mining/ws", live.connect),
        Route("/api/mining/ws", live.upgrade_required, methods=["GET"]),
        Route("/api/queue/stats", health.queue_stats, methods=["GET"]),
        Route("/api/mobile-app/apk", MobileEndpoint(settings).get),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/api/health", health.health, methods=["GET"]),
        Route("/health", health.health, methods=["GET"]),  # the scaling guide's path
        Route("/api/metrics", health.metrics, methods=["GET"]),
        Route("/openapi.json", openapi.get, methods=["GET"]),
        Route("/", page.index, methods=["GET"]),
        Route("/static/{asset}", page.asset, methods=["GET"]),
    ]
    return Api(
        outer_layers(settings, clicks.click, performance),
        routes=routes,
        middleware=middleware(settings, performance, redis),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


def middleware(settings: ApiSettings, performance: Performance, redis: Redis) -> list[Middleware]:
    """Starlette's middleware, outermost first: timing, the general limit, gzip, body size."""
    layers = [Middleware(TimingMiddleware, performance=performance)]
    if settings.limits.api_bucket is not None:
        layers.append(
            Middleware(
                ApiLimitMiddleware,
                redis=redis,
                bucket=settings.limits.api_bucket,
                trusted_proxies=settings.http.trusted_proxies,
            )
        )
    return [
        *layers,
        Middleware(Compression, minimum_size=settings.http.gzip_min_bytes),
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.http.max_body_bytes),
    ]


def outer_layers(
    settings: ApiSettings, click: Endpoint, performance: Performance
) -> Callable[[ASGIApp], ASGIApp]:
    """The layers around Starlette's own (see :class:`Api`), innermost first."""

    def outer(app: ASGIApp) -> ASGIApp:
        hot = ClickHotPath(
            app,
            endpoint=click,
            performance=performance,
            max_body_bytes=settings.http.max_body_bytes,
        )
        with_cors_or_not = (
            with_cors(hot, settings.http.cors_origins) if settings.http.cors_origins else hot
        )
        return SecurityHeaders(
            Shedding(with_cors_or_not, settings.http.max_requests_in_flight, performance),
            hsts_max_age=settings.http.hsts_max_age,
            trusted_proxies=settings.http.trusted_proxies,
        )

    return outer
