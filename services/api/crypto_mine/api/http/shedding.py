"""Load shedding: at most ``MAX_REQUESTS_IN_FLIGHT`` requests in progress per process; beyond,
``503`` + ``Retry-After`` at once.

Overloaded, a server that takes every request queues it (in the admission list, behind the
event loop's other work), and every answer gets slow: the clients' timeouts and retries then
add to the load. Answering the excess at once costs a few microseconds each and keeps the
answered requests as fast as at the sustainable rate (by Little's law their latency is at most
about the budget over the throughput). Never shed: the probes and the metrics (a readiness
probe shed for being busy would take the pod out of its Service, a liveness probe restart it),
and event streams, which live long and have their own limit per user.
"""

from __future__ import annotations

import time

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError
from .observability import CLICK_ROUTE, EVENTS_ROUTE, Performance

NEVER_SHED = frozenset(
    {"/healthz", "/readyz", "/health", "/api/health", "/api/metrics", EVENTS_ROUTE}
)
RETRY_AFTER = "1"

SHED = Counter(
    "mining_api_requests_shed_total",
    "Requests answered 503 overloaded at once: MAX_REQUESTS_IN_FLIGHT were in progress.",
)


def overloaded() -> ApiError:
    return ApiError(
        503,
        "overloaded",
        "The server is at capacity; retry after the Retry-After seconds with the same request.",
        {"Retry-After": RETRY_AFTER},
    )


class Shedding:
    def __init__(self, app: ASGIApp, budget: int, performance: Performance) -> None:
        self.app = app
        self.budget = budget
        self.performance = performance
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.budget:
            started = time.perf_counter()
            SHED.inc()
            await overloaded().response()(scope, receive, send)
            if scope["path"] == CLICK_ROUTE:  # counted with the other answers to clicks
                self.performance.observe(CLICK_ROUTE, scope["method"], started, 503)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
