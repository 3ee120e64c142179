"""``POST /api/mining/click`` straight from the ASGI entry, past the framework's layers.

The busiest route skips routing, the exception middlewares and the per-route wrappers (each
adds a closure and a hop for every message) but keeps what they do for it: the body limit,
JSON errors from the same handlers, and the same metrics. Everything else goes on to the
application as usual; a click answer is too small for compression.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

# Private to Starlette, on purpose: get_route_path is the path its router matches routes against
# (the scope's path without its root_path), so the hot path takes exactly the requests the router
# would give the click route, whatever the router's rule becomes; no public name gives it.
# tests/api/test_hot_path.py pins the agreement.
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .body_limit import announced_too_large, limited, too_large
from .errors import error_response
from .observability import CLICK_ROUTE, Performance

Endpoint = Callable[[Request], Awaitable[Response]]


class ClickHotPath:
    def __init__(
        self, app: ASGIApp, endpoint: Endpoint, performance: Performance, max_body_bytes: int
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.performance = performance
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or get_route_path(scope) != CLICK_ROUTE
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope, limited(receive, self.limit))
        try:
            if announced_too_large(scope, self.limit):
                raise too_large(self.limit)
            response = await self.endpoint(request)
        except Exception as error:
            response = await error_response(request, error)
        await response(scope, receive, send)
        self.performance.observe(CLICK_ROUTE, "POST", started, response.status_code)
