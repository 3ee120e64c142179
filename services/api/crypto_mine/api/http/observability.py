"""The api's metrics, request timing and the performance summary of ``/api/health``."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crypto_mine.common.metrics import HTTP_REQUESTS
from crypto_mine.common.names import Metrics

CLICK_ROUTE = "/api/mining/click"
EVENTS_ROUTE = "/api/mining/events"

CLICK_REQUESTS = Counter(Metrics.click_requests, "Click API responses by HTTP status.", ["status"])
HTTP_DURATION = Histogram(
    Metrics.http_duration,
    "HTTP request duration by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENT_STREAMS = Gauge(
    "mining_events_streams_open",
    "Live event connections open now: streams (GET /api/mining/events) and WebSockets.",
    multiprocess_mode="livesum",
)
EVENTS_SENT = Counter("mining_events_sent_total", "Events sent on event streams.", ["event"])


class Performance:
    """Response times and errors of this process over its last ``window`` requests."""

    def __init__(self, window: int = 4096) -> None:
        self.durations: deque[float] = deque(maxlen=window)
        # Labelled children, looked up once: a lookup takes a lock on every request.
        self._durations: dict[str, Histogram] = {}
        self._clicks: dict[int, Counter] = {}
        self._answers: dict[tuple[str, str, int], Counter] = {}
        self.total = 0
        self.errors = 0
        self.started = time.time()

    def observe(self, route: str, method: str, started: float, status: int) -> None:
        """One answered request: its status by route, its duration, the click status count."""
        answers = self._answers.get((route, method, status))
        if answers is None:
            answers = self._answers[route, method, status] = HTTP_REQUESTS.labels(
                route, method, str(status)
            )
        answers.inc()
        # An event stream lives as long as its client stays: that is no response time.
        if route == EVENTS_ROUTE:
            return
        elapsed = time.perf_counter() - started
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = HTTP_DURATION.labels(route)
        duration.observe(elapsed)
        if route == CLICK_ROUTE and method == "POST":
            count = self._clicks.get(status)
            if count is None:
                count = self._clicks[status] = CLICK_REQUESTS.labels(str(status))
            count.inc()
        self.record(elapsed, status)

    def record(self, seconds: float, status: int) -> None:
        self.durations.append(seconds)
        self.total += 1
        if status >= 500:
            self.errors += 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.durations)
        count = len(ordered)
        p95 = ordered[min(count - 1, int(0.95 * count))] if count else 0.0
        average = round(1000 * sum(ordered) / count, 3) if count else 0.0
        return {
            "avgResponseTime": average,  # the scaling guide's name (milliseconds)
            "avgResponseTimeMs": average,
            "p95ResponseTimeMs": round(1000 * p95, 3),
            "errorRate": round(self.errors / self.total, 5) if self.total else 0.0,
            "totalRequests": self.total,
            "errors": self.errors,
            "uptimeSeconds": round(time.time() - self.started, 1),
        }


class TimingMiddleware:
    """Counts every answer by route, method and status and observes its duration by route."""

    def __init__(self, app: ASGIApp, performance: Performance) -> None:
        self.app = app
        self.performance = performance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.performance.observe(route, scope["method"], started, status)
