"""``/api/mining/ws``: the events of ``GET /api/mining/events`` over a WebSocket.

The same per-user Redis Stream (the user's room), the same resume, heartbeat, auth and
per-user limit as the Server-Sent Events (``events.py``; both kinds count towards
``MINING_EVENTS_MAX_STREAMS_PER_USER``).

The handshake (``GET /api/mining/ws`` with ``Upgrade: websocket``):

- auth: ``Authorization: Bearer <token>`` (clients that set headers), the ``auth-token``
  cookie (browsers on the api's own site), or, for a browser page on an origin of
  ``CORS_ORIGIN``, the subprotocols ``crypto-mine.v1`` and ``bearer.<token>`` offered together:
  the answer names ``crypto-mine.v1``, never the token. Never a token in the URL.
- origin: a browser's ``Origin`` must be the api's own or one of ``CORS_ORIGIN``; otherwise
  ``403``, so that no other site can open a socket with a visitor's cookie.
- resume: the ``Last-Event-ID`` header, or ``?lastEventId=`` (an event id is no secret).
- refusals are HTTP answers with the usual JSON body: ``400``, ``401``, ``403``, ``429`` +
  ``Retry-After`` (too many streams, or the general api limit), ``503``.

Then text messages, JSON, from the server only:

- ``{"id": "<event id>", "event": "balance" | "click", "data": {...}}``, as the SSE events
  (a ``balance`` snapshot first);
- ``{"event": "heartbeat"}`` every ``MINING_EVENTS_HEARTBEAT`` seconds;
- ``{"event": "end", "data": {"reason": "token_expired" | "signed_out"}}`` last, when the
  token expires (reconnect with a fresh one) or is signed out, then a close with code 1000.

A client that falls ``QUEUE_LIMIT`` events behind is closed with code 1013 ("try again
later"): it reconnects with its last event id. What a client sends is read and ignored.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketClose, WebSocketDisconnect

from ..http.auth import Authenticator
from ..http.errors import ApiError, error_response
from ..http.observability import EVENT_STREAMS
from ..settings import ApiSettings
from .events import Event, EventFeeds, Feed
from .openapi_parts import SECURED, UNAUTHORIZED, UNAVAILABLE, Paths, error_answer

log = logging.getLogger(__name__)

PROTOCOL = "crypto-mine.v1"
BEARER_PREFIX = "bearer."  # the subprotocol that carries a token
HEARTBEAT = orjson.dumps({"event": "heartbeat"}).decode()
FELL_BEHIND = 1013


def message(event: Event) -> str:
    """One event as a text message (only its id when of a kind this version does not know)."""
    entry_id, name, body = event
    found: dict[str, Any] = {"id": entry_id} if entry_id else {}
    if name is not None:
        found.update(event=name, data=body)
    return orjson.dumps(found).decode()


def subprotocols(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The subprotocol to answer with, and the token the client put in one, if any."""
    offered: list[str] = websocket.scope.get("subprotocols") or []
    tokens = [p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)]
    if len(tokens) > 1:
        raise ApiError(400, "invalid_subprotocol", "Offer at most one bearer.<token> subprotocol.")
    if tokens and PROTOCOL not in offered:
        # A browser needs a subprotocol named in the answer; the token must never be it.
        raise ApiError(
            400,
            "invalid_subprotocol",
            f"Offer {PROTOCOL!r} beside 'bearer.<token>': the answer names {PROTOCOL!r}.",
        )
    return (PROTOCOL if PROTOCOL in offered else None), (tokens[0] if tokens else None)


class LiveSocket:
    def __init__(self, settings: ApiSettings, auth: Authenticator, feeds: EventFeeds) -> None:
        self.origins = frozenset(settings.http.cors_origins)
        self.auth = auth
        self.feeds = feeds

    def _check_origin(self, websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if origin is None:  # not a browser: the credentials alone decide
            return
        normalized = origin.strip().lower().rstrip("/")
        own = websocket.headers.get("host", "").lower()
        if normalized in self.origins or (own and urlsplit(normalized).netloc == own):
            return
        raise ApiError(
            403,
            "origin_not_allowed",
            f"Origin {origin[:100]!r} may not open this socket; CORS_ORIGIN lists the others.",
        )

    async def connect(self, websocket: WebSocket) -> None:
        try:
            protocol, token = subprotocols(websocket)
            self._check_origin(websocket)
            identity = await self.auth.identity(websocket, token)
            resume = websocket.headers.get("last-event-id") or websocket.query_params.get(
                "lastEventId"
            )
            feed = await self.feeds.open(identity, resume)
        except Exception as error:
            await self._refuse(websocket, error)
            return
        EVENT_STREAMS.inc()
        try:
            await websocket.accept(subprotocol=protocol)
            sent_all = False
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_closed, websocket, group.cancel_scope)
                sent_all = await self._send(websocket, feed)
                group.cancel_scope.cancel()
            if sent_all and feed.ended:
                await websocket.close(1000, feed.ended)
            elif sent_all:
                await websocket.close(FELL_BEHIND, "fell behind: reconnect with your last id")
        finally:
            EVENT_STREAMS.dec()
            with anyio.CancelScope(shield=True):
                await feed.close()

    async def upgrade_required(self, _: Request) -> Response:
        """A plain GET of the socket's path: how to open it instead."""
        raise ApiError(
            426,
            "upgrade_required",
            "This is a WebSocket: connect with Upgrade: websocket (or read the same events as "
            "Server-Sent Events from /api/mining/events).",
            {"Upgrade": "websocket", "Connection": "Upgrade"},
        )

    async def _refuse(self, websocket: WebSocket, error: Exception) -> None:
        response = await error_response(websocket, error)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:  # a server without denial responses: a close before the handshake is a 403
            await WebSocketClose(1008)(websocket.scope, websocket.receive, websocket.send)

    async def _until_closed(self, websocket: WebSocket, scope: anyio.CancelScope) -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # what a client sends is ignored
        scope.cancel()

    async def _send(self, websocket: WebSocket, feed: Feed) -> bool:
        """Sends until the client goes (False), or the feed ends (True): the client fell
        behind, or the token expired or was signed out (an ``end`` message sent last)."""
        try:
            if feed.snapshot is not None:
                await websocket.send_text(message(feed.snapshot))
            async for batch in feed.batches():
                if batch is None:
                    await websocket.send_text(HEARTBEAT)
                    continue
                for event in batch:
                    await websocket.send_text(message(event))
            if feed.ended:
                end = {"event": "end", "data": {"reason": feed.ended}}
                await websocket.send_text(orjson.dumps(end).decode())
        except WebSocketDisconnect:
            return False
        return True


OPENAPI: Paths = {
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
                "400": error_answer("Bad subprotocols (a token without crypto-mine.v1)."),
                "401": UNAUTHORIZED,
                "403": error_answer("The browser origin is not allowed (CORS_ORIGIN)."),
                "426": error_answer("A plain GET: this path is a WebSocket.", ["Upgrade"]),
                "429": error_answer("Too many open streams for this user.", ["Retry-After"]),
                "503": UNAVAILABLE,
            },
        }
    },
}
