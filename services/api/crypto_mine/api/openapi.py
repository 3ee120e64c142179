"""The OpenAPI 3.1 document of the api, served at ``/openapi.json``.

Each route module documents its own paths (``OPENAPI`` in ``routes/``); here they are put in
the document's order, with the general limit's ``429`` added where it applies, next to the
components they share.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .http.api_limit import limited_path
from .http.errors import JSONResponse
from .routes import accounts, clicks, events, health, live_socket, logout, mobile, page, status
from .routes.openapi_parts import LIMIT_HEADERS, Paths, error_answer, json_answer, ref

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "Stable error code."},
            "detail": {"type": "string", "description": "What is wrong, for people."},
        },
    },
    "Credentials": {
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": False,
        "properties": {
            "username": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_.-]{3,32}$",
                "description": "Unique regardless of case.",
            },
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
        },
    },
    "Session": {
        "type": "object",
        "required": ["userId", "username", "token"],
        "properties": {
            "userId": {"type": "string", "description": "From the id-allocator; the token's sub."},
            "username": {"type": "string", "description": "As registered."},
            "token": {"type": "string", "description": "JWT for `Authorization: Bearer`."},
        },
    },
    "ClickRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "clicks": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 1,
                "description": "Clicks carried by this request (at most "
                "MINING_MAX_CLICKS_PER_REQUEST).",
            }
        },
    },
    "ServerSentEvent": {
        "type": "object",
        "description": "One event of the stream (text/event-stream fields).",
        "properties": {
            "event": {"enum": ["click", "balance", "end"]},
            "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "A ClickStatus (`click`), a MiningStatus (`balance`), or "
                '`{"reason": "token_expired" | "signed_out"}` (`end`, the last event).',
            },
            "retry": {"type": "integer", "description": "Reconnection delay in ms."},
        },
    },
    "ClickQueued": {
        "type": "object",
        "required": ["idempotencyKey", "status", "clicks", "statusUrl"],
        "properties": {
            "idempotencyKey": {"type": "string"},
            "status": {"const": "queued"},
            "clicks": {"type": "integer"},
            "statusUrl": {"type": "string"},
        },
    },
    "ClickStatus": {
        "type": "object",
        "required": ["idempotencyKey", "status", "clicks", "acceptedAt"],
        "properties": {
            "idempotencyKey": {"type": "string"},
            "status": {"enum": ["queued", "completed", "failed"]},
            "clicks": {"type": "integer"},
            "acceptedAt": {"type": ["string", "null"], "format": "date-time"},
            "result": {
                "type": "object",
                "properties": {
                    "reward": {"type": ["integer", "null"]},
                    "balance": {"type": ["integer", "null"]},
                    "appliedAt": {"type": ["string", "null"], "format": "date-time"},
                    "duplicate": {"type": "boolean"},
                },
            },
            "error": {"type": "object", "properties": {"code": {"type": "string"}}},
        },
    },
    "MiningStatus": {
        "type": "object",
        "required": ["userId", "balance", "clicks", "lastClickAt"],
        "properties": {
            "userId": {"type": "string"},
            "balance": {"type": "integer"},
            "clicks": {"type": "integer"},
            "lastClickAt": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "QueueStats": {
        "type": "object",
        "required": ["queue", "depth", "jobs", "inProgress", "failed", "workers", "lagSeconds"],
        "properties": {
            "queue": {"type": "string"},
            "depth": {"type": "integer", "description": "Clicks accepted, not yet applied."},
            "jobs": {"type": "integer", "description": "Jobs waiting in the queue."},
            "inProgress": {"type": "integer"},
            "failed": {"type": "integer", "description": "Jobs in the dead-letter registry."},
            "workers": {"type": "integer"},
            "lagSeconds": {"type": "number"},
        },
    },
    "MobileApk": {
        "type": "object",
        "required": ["available", "downloadUrl", "version", "buildDate", "releaseNotes"],
        "properties": {
            "available": {"type": "boolean"},
            "downloadUrl": {"type": ["string", "null"]},
            "version": {"type": ["string", "null"]},
            "buildDate": {"type": ["string", "null"]},
            "releaseNotes": {"type": ["string", "null"]},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ready", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks", "performance", "queue"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            "performance": {
                "type": "object",
                "properties": {
                    "avgResponseTime": {
                        "type": "number",
                        "description": "Milliseconds (the scaling guide's name).",
                    },
                    "avgResponseTimeMs": {"type": "number"},
                    "p95ResponseTimeMs": {"type": "number"},
                    "errorRate": {"type": "number"},
                    "totalRequests": {"type": "integer"},
                    "errors": {"type": "integer"},
                    "uptimeSeconds": {"type": "number"},
                },
            },
            "queue": {
                "oneOf": [
                    {
                        "allOf": [
                            ref("QueueStats"),
                            {
                                "type": "object",
                                "required": ["pending"],
                                "properties": {
                                    "pending": {
                                        "type": "integer",
                                        "description": "Clicks waiting (= depth).",
                                    }
                                },
                            },
                        ]
                    },
                    {"type": "null"},
                ]
            },
        },
    },
}

HEADERS: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "RateLimit": {
        "description": 'The binding limit: `"name";r=remaining;t=seconds-until-full`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'Every limit: `"name";q=burst;w=seconds-to-refill`.',
        "schema": {"type": "string"},
    },
    "Location": {"description": "Where to poll the click's status.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when the answer is the stored outcome of an earlier request.",
        "schema": {"type": "string"},
    },
    "ETag": {"description": "Entity tag of the status.", "schema": {"type": "string"}},
    "Set-Cookie": {
        "description": "`auth-token=<token>; HttpOnly; SameSite=lax; Path=/; Max-Age=…` "
        "(`Secure` unless AUTH_COOKIE_SECURE=false).",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "Caching policy.", "schema": {"type": "string"}},
    "Upgrade": {"description": "`websocket`.", "schema": {"type": "string"}},
}


def click_request(max_clicks: int) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(SCHEMAS["ClickRequest"])
    schema["properties"]["clicks"]["maximum"] = max_clicks
    return schema


API_LIMITED = "The general api limit (API_RATE_LIMIT per client IP) is exhausted."


def general_limit(paths: dict[str, Any]) -> None:
    """Every operation under the general limit (``api_limit.py``) may answer its ``429``."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            if not limited_path({"type": "http", "path": path, "method": method.upper()}):
                continue
            own = operation["responses"].get("429")
            if own is None:
                operation["responses"]["429"] = error_answer(
                    API_LIMITED, ["Retry-After", *LIMIT_HEADERS]
                )
            else:
                own["description"] += " Or: " + API_LIMITED
                own["headers"].update(error_answer("", LIMIT_HEADERS)["headers"])


OPENAPI: Paths = {
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": json_answer({"type": "object"}, "OpenAPI document.")},
        }
    },
}

ROUTES: tuple[Paths, ...] = (
    accounts.OPENAPI,
    logout.OPENAPI,
    clicks.OPENAPI,
    events.OPENAPI,
    live_socket.OPENAPI,
    page.OPENAPI,
    status.OPENAPI,
    health.OPENAPI,
    mobile.OPENAPI,
    OPENAPI,
)
# The order the document has always listed its paths in (the served bytes keep it); a path
# not named here follows these, in the order of ROUTES.
ORDER = (
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/logout",
    "/api/mining/click",
    "/api/mining/click/status",
    "/api/mining/events",
    "/api/mining/ws",
    "/",
    "/static/{asset}",
    "/api/mining/status",
    "/api/queue/stats",
    "/api/mobile-app/apk",
    "/healthz",
    "/readyz",
    "/api/health",
    "/health",
    "/api/metrics",
    "/openapi.json",
)


def paths() -> Paths:
    """Every route's operations, in the document's order (a copy: the limit is added to it)."""
    documented: Paths = {}
    for routes in ROUTES:
        documented.update(routes)
    ordered = {**{path: documented[path] for path in ORDER}, **documented}
    return copy.deepcopy(ordered)


def document(max_clicks_per_request: int = 1000) -> dict[str, Any]:
    """The document, with the running api's MINING_MAX_CLICKS_PER_REQUEST."""
    operations = paths()
    general_limit(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crypto-mine api",
            "version": "0.1.0",
            "description": "Mining clicks, queued and applied exactly once.",
        },
        "paths": operations,
        "components": {
            "schemas": {**SCHEMAS, "ClickRequest": click_request(max_clicks_per_request)},
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "auth-token"},
            },
        },
    }


class OpenApiEndpoint:
    """``GET /openapi.json``: the document, built once."""

    def __init__(self, max_clicks_per_request: int) -> None:
        self.document = document(max_clicks_per_request)

    async def get(self, _: Request) -> Response:
        return JSONResponse(self.document)
