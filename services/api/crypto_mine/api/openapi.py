"""The OpenAPI 3.1 document of the api, served at ``/openapi.json``."""

from __future__ import annotations

import copy
from typing import Any

from .admission.idempotency import MAX_LENGTH
from .http.api_limit import limited_path


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(
    schema: dict[str, Any], description: str, headers: list[str] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return response


def _error(description: str, headers: list[str] | None = None) -> dict[str, Any]:
    return _json(_ref("Error"), description, headers)


LIMIT_HEADERS = ["RateLimit", "RateLimit-Policy"]
SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
UNAUTHORIZED = _error("Missing, invalid or expired token.")
UNSUPPORTED = _error("The body is not sent as application/json (no HTML form can sign in).")
UNAVAILABLE = _error("A dependency is unreachable; retry later.", ["Retry-After"])

KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[ -~]+$"}

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
                            _ref("QueueStats"),
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
                operation["responses"]["429"] = _error(API_LIMITED, ["Retry-After", *LIMIT_HEADERS])
            else:
                own["description"] += " Or: " + API_LIMITED
                own["headers"].update(_error("", LIMIT_HEADERS)["headers"])


def document(max_clicks_per_request: int = 1000) -> dict[str, Any]:
    """The document, with the running api's MINING_MAX_CLICKS_PER_REQUEST."""
    key_header = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "Unique per click and user; retries reuse it. A repeat is answered "
        "with the click's original outcome, from Redis for MINING_IDEMPOTENCY_WINDOW_SECONDS "
        "after the click completed, from MongoDB after that.",
        "schema": KEY_SCHEMA,
    }
    credentials = {
        "required": True,
        "content": {"application/json": {"schema": _ref("Credentials")}},
    }
    paths: dict[str, Any] = {
        "/api/auth/register": {
            "post": {
                "summary": "Create an account",
                "description": "The user id comes from the id-allocator; the password is "
                "stored as an argon2 hash.",
                "requestBody": credentials,
                "responses": {
                    "201": _json(_ref("Session"), "Created and signed in.", ["Set-Cookie"]),
                    "400": _error(
                        "Invalid JSON, a repeated key, missing or malformed username or "
                        "password, or a password that is among the most common ones "
                        "(`password_too_common`) or is the username (`password_is_username`)."
                    ),
                    "409": _error("The username is taken (case does not matter)."),
                    "413": _error("Body too large."),
                    "415": UNSUPPORTED,
                    "429": _error(
                        "Too many sign-up attempts from this IP (REGISTER_MAX_ATTEMPTS per "
                        "REGISTER_WINDOW_SECONDS).",
                        ["Retry-After"],
                    ),
                    "501": _error(
                        "This api issues no tokens (JWT_ALGORITHMS without HS256): sign in with "
                        "the identity provider whose JWKS it trusts."
                    ),
                    "503": _error(
                        "The id-allocator, Redis or MongoDB is unreachable; no account was "
                        "created.",
                        ["Retry-After"],
                    ),
                },
            }
        },
        "/api/auth/login": {
            "post": {
                "summary": "Sign in",
                "description": "Per LOGIN_WINDOW_SECONDS: at most LOGIN_MAX_ATTEMPTS failed "
                "logins per username and client IP, and LOGIN_IP_MAX_ATTEMPTS logins of any "
                "outcome per client IP; past LOGIN_MAX_ATTEMPTS failures of a username from "
                "anywhere, attempts from browsers that never signed in to it (no `login-device` "
                "cookie) wait a delay that doubles up to LOGIN_DELAY_MAX_SECONDS. A success "
                "clears the username's failures and sets the `login-device` cookie.",
                "requestBody": credentials,
                "responses": {
                    "200": _json(_ref("Session"), "Signed in.", ["Set-Cookie"]),
                    "400": _error(
                        "Invalid JSON, a repeated key, missing or malformed username or password."
                    ),
                    "401": _error("The username or password is wrong (the same answer for both)."),
                    "413": _error("Body too large."),
                    "415": UNSUPPORTED,
                    "429": _error(
                        "Too many attempts: `limit` is ip, username_ip or username (a delay of "
                        "seconds).",
                        ["Retry-After"],
                    ),
                    "501": _error(
                        "This api issues no tokens (JWT_ALGORITHMS without HS256): sign in with "
                        "the identity provider whose JWKS it trusts."
                    ),
                    "503": _error(
                        "Redis or MongoDB is unreachable; nothing was checked.", ["Retry-After"]
                    ),
                },
            }
        },
        "/api/auth/logout": {
            "post": {
                "summary": "Sign out",
                "description": "Clears the auth-token cookie, ends every event stream opened "
                "with this token on every replica, and refuses it for new streams; the token "
                "stays valid for other calls until its exp.",
                "security": SECURED,
                "responses": {
                    "204": {
                        "description": "Signed out.",
                        "headers": {
                            "Set-Cookie": {
                                "description": "`auth-token=; Max-Age=0` (the cookie is cleared).",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "401": UNAUTHORIZED,
                    "403": _error(
                        "Authenticated by the cookie, but sent from another site's page."
                    ),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/mining/click": {
            "post": {
                "summary": "Queue a mining click",
                "description": "Order: auth, rate limits, idempotency, backpressure, enqueue.",
                "security": SECURED,
                "parameters": [key_header],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("ClickRequest")}},
                },
                "responses": {
                    "202": _json(_ref("ClickQueued"), "Queued.", ["Location", *LIMIT_HEADERS]),
                    "200": _json(
                        _ref("ClickStatus"),
                        "A repeat of a known key: its current outcome. With USE_QUEUE=false "
                        "(development and tests only) also a new click, applied before the "
                        "answer (`Idempotent-Replayed` only on repeats).",
                        ["Idempotent-Replayed", *LIMIT_HEADERS],
                    ),
                    "409": _json(
                        _ref("ClickStatus"),
                        "USE_QUEUE=false only: the new click failed, with its error code.",
                    ),
                    "400": _error("Missing or invalid Idempotency-Key, or invalid body."),
                    "401": UNAUTHORIZED,
                    "403": _error(
                        "Authenticated by the cookie, but sent from another site's page "
                        "(Sec-Fetch-Site or Origin)."
                    ),
                    "413": _error("Body too large."),
                    "422": _error("The key was used before with a different body."),
                    "429": _error("A rate limit is exhausted.", ["Retry-After", *LIMIT_HEADERS]),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/mining/click/status": {
            "get": {
                "summary": "Outcome of one of the caller's clicks",
                "security": SECURED,
                "parameters": [
                    {"name": "key", "in": "query", "required": True, "schema": KEY_SCHEMA}
                ],
                "responses": {
                    "200": _json(_ref("ClickStatus"), "Completed."),
                    "202": _json(_ref("ClickStatus"), "Queued or being applied."),
                    "400": _error("Missing or invalid key."),
                    "401": UNAUTHORIZED,
                    "404": _error("Unknown key for this user."),
                    "409": _json(_ref("ClickStatus"), "Failed, with its error code."),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/mining/events": {
            "get": {
                "summary": "The caller's click outcomes and balance changes, live",
                "description": "Server-Sent Events. A new stream starts with a `balance` "
                "snapshot; then every `click` outcome (a ClickStatus) and `balance` change "
                "(a MiningStatus) of the caller as the worker applies them, each with its "
                "`id`. Reconnect with `Last-Event-ID` to receive exactly the events missed "
                "(a `balance` snapshot first when some were trimmed away). A `: heartbeat` "
                "comment comes every MINING_EVENTS_HEARTBEAT seconds. Browsers authenticate "
                "with the auth-token cookie (tokens are never accepted in the URL). At most "
                "MINING_EVENTS_MAX_STREAMS_PER_USER open streams per user. The stream ends "
                "with an `end` event when its token expires (reconnect with a fresh one) or "
                "is signed out by logout.",
                "security": SECURED,
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "The id of the last event received (`<ms>-<n>`); "
                        "any other value is ignored and the stream starts afresh.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The event stream (`event: click` or `balance`, "
                        "`data:` one JSON document).",
                        "content": {"text/event-stream": {"schema": _ref("ServerSentEvent")}},
                    },
                    "401": _error("Missing, invalid, expired or signed-out token."),
                    "429": _error("Too many open streams for this user.", ["Retry-After"]),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/mining/ws": {
            "get": {
                "summary": "The events of /api/mining/events over a WebSocket",
                "description": (
                    "Open with `Upgrade: websocket`. Auth: a bearer token, the auth-token "
                    "cookie, or the subprotocols `crypto-mine.v1` + `bearer.<token>` (the "
                    "answer names `crypto-mine.v1`); never a token in the URL. A browser's "
                    "Origin must be the api's own or one of CORS_ORIGIN. Resume: "
                    "`Last-Event-ID` or `?lastEventId=`. Messages (JSON text): `{id, event, "
                    "data}` as the event stream's, and `{event: heartbeat}`."
                ),
                "security": SECURED,
                "parameters": [
                    {"name": "lastEventId", "in": "query", "schema": {"type": "string"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "101": {"description": "Switching Protocols: the socket is open."},
                    "400": _error("Bad subprotocols (a token without crypto-mine.v1)."),
                    "401": UNAUTHORIZED,
                    "403": _error("The browser origin is not allowed (CORS_ORIGIN)."),
                    "426": _error("A plain GET: this path is a WebSocket.", ["Upgrade"]),
                    "429": _error("Too many open streams for this user.", ["Retry-After"]),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/": {
            "get": {
                "summary": "The demo page: sign up or in, mine, watch the balance live",
                "responses": {
                    "200": {
                        "description": "HTML page (its script and style under /static/).",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/static/{asset}": {
            "get": {
                "summary": "The demo page's script and style sheet",
                "parameters": [
                    {
                        "name": "asset",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["app.js", "app.css"]},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "Not modified."},
                    "404": _error("No such asset."),
                },
            }
        },
        "/api/mining/status": {
            "get": {
                "summary": "The caller's balance, click count and last click",
                "security": SECURED,
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(
                        _ref("MiningStatus"), "Current status.", ["ETag", "Cache-Control"]
                    ),
                    "304": {"description": "Not modified."},
                    "401": UNAUTHORIZED,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/api/queue/stats": {
            "get": {
                "summary": "Click queue statistics",
                "responses": {"200": _json(_ref("QueueStats"), "Statistics."), "503": UNAVAILABLE},
            }
        },
        "/api/mobile-app/apk": {
            "get": {
                "summary": "Mobile release metadata",
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(_ref("MobileApk"), "Metadata.", ["ETag", "Cache-Control"]),
                    "304": {"description": "Not modified."},
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "responses": {"200": _json({"type": "object"}, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis reachable (and MongoDB with USE_QUEUE=false)",
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready."),
                    "503": _json(_ref("Readiness"), "Not ready."),
                },
            }
        },
        "/api/health": {
            "get": {
                "summary": "Performance summary of this process, dependencies and queue",
                "responses": {"200": _json(_ref("Health"), "Summary.")},
            }
        },
        "/health": {
            "get": {
                "summary": "The same as /api/health (the scaling guide's path)",
                "responses": {"200": _json(_ref("Health"), "Summary.")},
            }
        },
        "/api/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI document.")},
            }
        },
    }
    general_limit(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crypto-mine api",
            "version": "0.1.0",
            "description": "Mining clicks, queued and applied exactly once.",
        },
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, "ClickRequest": click_request(max_clicks_per_request)},
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "auth-token"},
            },
        },
    }
