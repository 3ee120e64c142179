"""``GET /api/mining/events``: the caller's click outcomes and balance changes, live (SSE).

The same events also go over a WebSocket (``/api/mining/ws``, ``live_socket.py``): both read
one :class:`Feed` per connection, opened by :class:`EventFeeds`. Server-Sent Events stay the
first choice of the demo page: the flow is one-way, it passes proxies as plain HTTP, browsers
reconnect by themselves and send ``Last-Event-ID``, and the ``auth-token`` cookie authenticates
an ``EventSource`` (which cannot set headers; tokens never go in URLs).

The source is the user's Redis Stream, appended by the outcome writer in the very script that
records the outcomes (``crypto_mine.pipeline.events``), so any api replica serves any client, and
a stream only ever holds its own user's events: the stream is the user's room.

- One blocking ``XREAD`` per api process serves all of its open streams (:class:`EventHub`):
  an open stream holds no Redis connection. A new subscriber wakes the reader at once with
  ``CLIENT UNBLOCK``.
- Every event carries its stream entry id as its SSE ``id``. A reconnect with ``Last-Event-ID``
  reads on from there: nothing in between is lost while the stream keeps it (MAXLEN, TTL).
  When entries older than the oldest kept one were trimmed past the client's position, a
  ``balance`` snapshot comes first. A new connection starts with a ``balance`` snapshot whose
  id is the stream's end at that moment, so the events after it are exactly the new ones.
- At most ``MINING_EVENTS_MAX_STREAMS_PER_USER`` open streams per user across all replicas,
  SSE and WebSocket together: leases in a sorted set, renewed with every heartbeat and gone
  three heartbeats after the replica holding them died. Beyond the limit: ``429`` with
  ``Retry-After``.
- A heartbeat every ``MINING_EVENTS_HEARTBEAT`` seconds (an SSE comment line) keeps proxies
  from closing an idle stream and finds dead clients.
- A client more than ``QUEUE_LIMIT`` events behind is disconnected; it resumes from Redis.
- A stream ends when its token expires (``token_expired``: the client reconnects with a fresh
  one) or is signed out (``signed_out``: ``POST /api/auth/logout`` on any replica appends a
  ``signout`` entry to the user's stream, and opens no stream with that token again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import anyio
import orjson
import redis.asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from crypto_mine.common import scripts
from crypto_mine.common.names import ShardKeys
from crypto_mine.common.settings import RedisSettings
from crypto_mine.pipeline import events

from .. import SCRIPTS
from ..admission.shards import Shard, Shards
from ..http.auth import Authenticator, Identity, unauthorized
from ..http.errors import ApiError
from ..http.observability import EVENT_STREAMS, EVENTS_SENT
from ..settings import ApiSettings
from .openapi_parts import SECURED, UNAVAILABLE, Paths, error_answer, ref
from .status import StatusEndpoint

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
READ_COUNT = 500
BLOCK_MS = 5000
LEASE_HEARTBEATS = 3
RETRY_MS = 2000  # what browsers wait before reconnecting
START = "0-0"

Entry = tuple[str, dict[str, str]]


class Subscription:
    """One open stream: where it is in the user's Redis Stream, and what waits to be sent."""

    def __init__(self, user_id: str, cursor: str) -> None:
        self.user_id = user_id
        self.cursor = cursor
        self.position = events.parse_id(cursor) or (0, 0)
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False


class EventHub:
    """Reads the streams of every subscribed user with one blocking ``XREAD`` and fans out."""

    def __init__(self, settings: RedisSettings, control: Redis, keys: ShardKeys) -> None:
        self.keys = keys
        self.reader = redis.asyncio.Redis.from_url(
            settings.url,
            socket_timeout=BLOCK_MS / 1000 + settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            decode_responses=True,
            single_connection_client=True,
            protocol=2,
        )
        self.control = control
        self.subscriptions: dict[str, set[Subscription]] = {}
        self._reader_id: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, user_id: str, cursor: str) -> Subscription:
        subscription = Subscription(user_id, cursor)
        self.subscriptions.setdefault(user_id, set()).add(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        elif self._reader_id is not None:
            with contextlib.suppress(RedisError):  # the reader then notices within BLOCK_MS
                await self.control.client_unblock(self._reader_id)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        mine = self.subscriptions.get(subscription.user_id)
        if mine is not None:
            mine.discard(subscription)
            if not mine:
                del self.subscriptions[subscription.user_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.reader.aclose()

    async def _run(self) -> None:
        failures = 0
        while self.subscriptions:
            users = {self.keys.events(user): user for user in self.subscriptions}
            streams = {
                key: min(self.subscriptions[user], key=lambda s: s.position).cursor
                for key, user in users.items()
            }
            try:
                self._reader_id = int(await self.reader.client_id())
                reply = cast(
                    list[tuple[str, list[Entry]]],
                    await self.reader.xread(
                        streams,  # type: ignore[arg-type]
                        count=READ_COUNT,
                        block=BLOCK_MS,
                    ),
                )
            except RedisError as error:
                failures += 1
                log.warning("event streams unreadable (%s); retrying", error)
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                continue
            finally:
                self._reader_id = None
            failures = 0
            for key, entries in reply or []:  # RESP2: [[key, [(id, fields), ...]], ...]
                self._dispatch(users[key], entries)

    def _dispatch(self, user_id: str, entries: list[Entry]) -> None:
        for subscription in list(self.subscriptions.get(user_id, ())):
            for entry_id, fields in entries:
                position = events.parse_id(entry_id) or (0, 0)
                if position <= subscription.position:
                    continue
                try:
                    subscription.queue.put_nowait((entry_id, fields))
                except asyncio.QueueFull:
                    subscription.overflowed = True
                    self.unsubscribe(subscription)
                    break
                subscription.position, subscription.cursor = position, entry_id


# Entry id (None: a snapshot with no place in the stream), name and body (None: unknown kind).
Event = tuple[str | None, str | None, dict[str, Any] | None]


def decoded(user_id: str, entries: list[Entry]) -> list[Event]:
    """The events of stream entries, counted as sent."""
    found: list[Event] = []
    for entry_id, fields in entries:
        parsed = events.payload(user_id, fields)
        if parsed is None:  # an entry of a kind this version does not know: only the id moves
            found.append((entry_id, None, None))
            continue
        name, body = parsed
        EVENTS_SENT.labels(name).inc()
        found.append((entry_id, name, body))
    return found


def signs_out(fields: dict[str, str], token_id: str) -> bool:
    """Whether a stream entry is the sign-out of the token ``token_id`` (never sent on)."""
    return fields.get(events.TYPE_FIELD) == events.SIGNOUT and (
        fields.get(events.SESSION_FIELD) == token_id
    )


class Feed:
    """One open connection's events: a snapshot maybe, then batches, with a lease held."""

    def __init__(
        self,
        feeds: EventFeeds,
        shard: Shard,
        subscription: Subscription,
        snapshot: Event | None,
        identity: Identity,
        connection: str,
    ) -> None:
        self.feeds = feeds
        self.shard = shard
        self.subscription = subscription
        self.user_id = subscription.user_id
        self.snapshot = snapshot
        self.identity = identity
        # The lease, renewed while the token is not signed out.
        self.leases = [
            shard.keys.event_leases(identity.user_id),
            shard.keys.signed_out(identity.token_id),
        ]
        self.connection = connection
        # Why the feed ended, when the api ended it: "token_expired" or "signed_out".
        self.ended: str | None = None

    async def batches(self) -> AsyncGenerator[list[Event] | None, None]:
        """Events as they come, in batches; None when a heartbeat is due (the lease renewed).

        Ends when the client fell more than ``QUEUE_LIMIT`` events behind, or with
        :attr:`ended` set when the token expires or is signed out.
        """
        loop = asyncio.get_running_loop()
        heartbeat = self.feeds.heartbeat
        queue = self.subscription.queue
        beat = loop.time() + heartbeat
        end = loop.time() + (self.identity.expires - time.time())
        while True:
            if self.subscription.overflowed and queue.empty():
                log.warning("event stream of %s fell behind; closing it", self.user_id)
                return
            try:
                first = await asyncio.wait_for(queue.get(), max(0.0, min(beat, end) - loop.time()))
            except TimeoutError:
                first = None
            if first is not None:
                entries = [first]
                while not queue.empty():
                    entries.append(queue.get_nowait())
                for n, (_, fields) in enumerate(entries):
                    if signs_out(fields, self.identity.token_id):
                        if n:
                            yield decoded(self.user_id, entries[:n])
                        self.ended = "signed_out"
                        return
                yield decoded(self.user_id, entries)
            if loop.time() >= end:  # the client reconnects with a fresh token
                self.ended = "token_expired"
                return
            if loop.time() >= beat:
                beat = loop.time() + heartbeat
                await self.feeds.renew(self.shard, self.leases, self.connection)
                yield None

    async def close(self) -> None:
        self.feeds.hubs[self.shard.index].unsubscribe(self.subscription)
        await self.feeds.release(self.shard, self.leases[0], self.connection)


class EventFeeds:
    """Opens feeds: the per-user limit (leases), where to start, and the snapshot to send first;
    each on the user's shard, whose streams one hub per shard reads."""

    def __init__(self, settings: ApiSettings, shards: Shards, status: StatusEndpoint) -> None:
        self.settings = settings
        self.shards = shards
        self.hubs = [
            EventHub(shard.redis_settings, shard.redis, shard.keys) for shard in shards.all
        ]
        self.status = status
        lease = scripts.load(SCRIPTS, "event_lease.lua")
        self.leases = [shard.redis.register_script(lease) for shard in shards.all]
        self.heartbeat = settings.feeds.heartbeat_seconds
        self.lease_ms = math.ceil(1000 * self.heartbeat * LEASE_HEARTBEATS)

    async def open(self, identity: Identity, resume: str | None) -> Feed:
        """A feed from ``resume`` (an event id) or from now; ``429`` beyond the user's limit,
        ``401`` for a token that was signed out."""
        user_id = identity.user_id
        cursor = resume.strip() if resume and events.parse_id(resume) else None
        connection = uuid.uuid4().hex
        shard = self.shards.of(user_id)
        leases = [shard.keys.event_leases(user_id), shard.keys.signed_out(identity.token_id)]
        limit = self.settings.feeds.max_per_user
        lease = self.leases[shard.index]
        leased = int(await lease(keys=leases, args=[connection, self.lease_ms, limit]))
        if leased < 0:
            raise unauthorized("This token was signed out; sign in again.")
        if not leased:
            raise ApiError(
                429,
                "too_many_streams",
                f"At most {limit} event streams may be open per user; close one or retry later.",
                {"Retry-After": str(math.ceil(self.heartbeat))},
                limit=limit,
            )
        try:
            start, snapshot = await self._start(shard, user_id, cursor)
            subscription = await self.hubs[shard.index].subscribe(user_id, start)
        except BaseException:
            await self.release(shard, leases[0], connection)
            raise
        return Feed(self, shard, subscription, snapshot, identity, connection)

    async def close(self) -> None:
        for hub in self.hubs:
            await hub.close()

    async def _start(
        self, shard: Shard, user_id: str, cursor: str | None
    ) -> tuple[str, Event | None]:
        """Where to read from, and the ``balance`` snapshot to send first (if any)."""
        try:
            info: dict[str, Any] = await shard.redis.xinfo_stream(shard.keys.events(user_id))
        except ResponseError:  # no such stream: no events yet, or they all expired
            info = {}
        if cursor is None:
            start = str(info.get("last-generated-id") or START)
            return start, await self._snapshot(user_id, start)
        if not info:
            gap = cursor != START
        else:
            first = info.get("first-entry")
            trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
            oldest = events.parse_id(first[0]) if first else None
            position = events.parse_id(cursor) or (0, 0)
            gap = trimmed and oldest is not None and oldest > position
        return cursor, await self._snapshot(user_id, None) if gap else None

    async def _snapshot(self, user_id: str, entry_id: str | None) -> Event:
        status = await self.status.lookup(user_id)
        EVENTS_SENT.labels(events.BALANCE).inc()
        return entry_id, events.BALANCE, status.to_json()

    async def renew(self, shard: Shard, leases: list[str], connection: str) -> None:
        try:
            await self.leases[shard.index](keys=leases, args=[connection, self.lease_ms, 0])
        except RedisError as error:
            log.warning("event stream lease not renewed: %s", error)

    async def release(self, shard: Shard, leases: str, connection: str) -> None:
        try:
            await asyncio.wait_for(shard.redis.zrem(leases, connection), 2)
        except (RedisError, TimeoutError) as error:  # the lease expires by itself
            log.warning("event stream lease not released: %s", error)


# The last event of a stream the api ends: why, so the client knows what to do.
ENDED = b'event: end\ndata: {"reason":"%s"}\n\n'


def frame(event: Event) -> bytes:
    """One SSE event: ``id``, ``event`` and a one-line JSON ``data`` (only an id if unknown)."""
    entry_id, name, body = event
    head = f"id: {entry_id}\n".encode() if entry_id else b""
    if name is None:
        return head + b"\n"
    return head + b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(body))


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` that runs ``on_close`` however the stream ends."""

    media_type = "text/event-stream"

    def __init__(
        self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(
            content,
            headers={"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"},
        )
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        EVENT_STREAMS.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            EVENT_STREAMS.dec()
            with anyio.CancelScope(shield=True):
                await self.on_close()


class EventEndpoint:
    def __init__(self, auth: Authenticator, feeds: EventFeeds) -> None:
        self.auth = auth
        self.feeds = feeds

    async def stream(self, request: Request) -> EventStreamResponse:
        identity = await self.auth.identity(request)
        feed = await self.feeds.open(identity, request.headers.get("last-event-id"))
        body = self._events(feed)

        async def close() -> None:
            await body.aclose()
            await feed.close()

        return EventStreamResponse(body, close)

    async def _events(self, feed: Feed) -> AsyncGenerator[bytes, None]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        if feed.snapshot is not None:
            yield frame(feed.snapshot)
        async for batch in feed.batches():
            yield b": heartbeat\n\n" if batch is None else b"".join(map(frame, batch))
        if feed.ended:
            yield ENDED % feed.ended.encode()


OPENAPI: Paths = {
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
                    "content": {"text/event-stream": {"schema": ref("ServerSentEvent")}},
                },
                "401": error_answer("Missing, invalid, expired or signed-out token."),
                "429": error_answer("Too many open streams for this user.", ["Retry-After"]),
                "503": UNAVAILABLE,
            },
        }
    },
}
