"""CORS for the browser origins of ``CORS_ORIGIN`` (besides the api's own), on every route.

With none configured, no CORS header is sent and browsers keep other sites out. With some,
their pages may call the api with credentials (the cookie, or a bearer token) and read the
headers a client needs: the rate limits, ``Retry-After``, ``Location``, the replay mark and the
``ETag``. Preflights are answered here, before any limit or route. The WebSocket checks
``Origin`` itself (``live_socket.py``): browsers do not apply CORS to WebSockets.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from .errors import ApiError

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
EXPOSED_HEADERS = (
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "Location",
    "Idempotent-Replayed",
    "ETag",
)
PREFLIGHT_MAX_AGE = 600


class Cors(CORSMiddleware):
    """Starlette's CORS, refusing a preflight with the api's JSON error body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode()  # "Disallowed CORS origin, method, ..."
        return ApiError(
            response.status_code,
            "cors_refused",
            f"{refused}; CORS_ORIGIN lists the origins allowed.",
            {k: v for k, v in response.headers.items() if k.lower().startswith("access-control")},
        ).response()


def with_cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    return Cors(
        app,
        allow_origins=origins,
        allow_methods=("GET", "POST"),
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
