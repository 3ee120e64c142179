"""/api/mining/ws with a real WebSocket client (``websockets``) against real api processes
(uvicorn) and a real worker: the same events as the event stream, from the same per-user
stream; resume from an event id; heartbeats; the same auth, per-user limit and general limit;
browser origins checked against CORS_ORIGIN."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from crypto_mine.api.http.auth import COOKIE
from crypto_mine.common.names import Keys
from tests.api.conftest import StartApi
from tests.support.api import Api
from tests.support.sse import ApiProcess, Block, balance_reached, open_stream
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

Message = dict[str, Any]


def ws_url(api: ApiProcess, query: str = "") -> str:
    return api.url.replace("http://", "ws://", 1) + "/api/mining/ws" + query


@contextlib.asynccontextmanager
async def socket(
    api: ApiProcess, headers: dict[str, str] | None = None, query: str = "", **options: Any
) -> AsyncIterator[ClientConnection]:
    async with connect(
        ws_url(api, query), additional_headers=headers, proxy=None, open_timeout=10, **options
    ) as ws:
        yield ws


async def refusal(
    api: ApiProcess, headers: dict[str, str] | None = None, query: str = "", **options: Any
) -> tuple[int, Any, Message]:
    """The HTTP answer that refused a handshake: status, headers, JSON body."""
    with pytest.raises(InvalidStatus) as raised:
        async with socket(api, headers, query, **options):
            pass
    response = raised.value.response
    return response.status_code, response.headers, json.loads(response.body or b"{}")


async def received(ws: ClientConnection, within: float = 10) -> Message:
    found: Message = json.loads(await asyncio.wait_for(ws.recv(), within))
    return found


async def until(
    ws: ClientConnection, done: Callable[[Message], bool], within: float = 20
) -> list[Message]:
    """Events (heartbeats skipped) up to and including the first for which ``done`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    found = []
    while True:
        message = await received(ws, max(0.01, deadline - loop.time()))
        if message["event"] == "heartbeat":
            continue
        found.append(message)
        if done(message):
            return found


def balance_at(clicks: int) -> Callable[[Message], bool]:
    return lambda m: m["event"] == "balance" and m["data"]["clicks"] >= clicks


async def click(client: httpx.AsyncClient, api: ApiProcess, user: str, key: str, n: int = 1) -> int:
    answer = await client.post(
        f"{api.url}/api/mining/click",
        headers={**api.auth(user), "Idempotency-Key": key},
        json={"clicks": n},
    )
    return answer.status_code


def as_blocks(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [(m.get("id"), m["event"], m["data"]) for m in messages]


def sse_blocks(blocks: list[Block]) -> list[tuple[Any, ...]]:
    return [(b.id, b.event, b.data) for b in blocks]


async def test_the_socket_carries_the_stream_events_of_its_own_user(
    serve_api: StartApi, worker: WorkerProcess
) -> None:
    a, b = serve_api(), serve_api()
    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, a.url, a.auth("u1")) as stream,
        socket(a, a.auth("u1")) as mine,
        socket(b, b.auth("u1")) as mine_too,
        socket(b, b.auth("u2")) as theirs,
    ):
        snapshots = [await received(ws) for ws in (mine, mine_too, theirs)]
        assert snapshots[0] == {
            "id": "0-0",
            "event": "balance",
            "data": {"userId": "u1", "balance": 0, "clicks": 0, "lastClickAt": None},
        }
        assert snapshots[1] == snapshots[0]
        assert snapshots[2]["data"]["userId"] == "u2"
        sse_snapshot = await stream.event()

        sizes = {f"k{i}": 1 + i % 3 for i in range(8)}
        answers = await asyncio.gather(
            *(
                click(client, (a, b)[i % 2], "u1", key, n)
                for i, (key, n) in enumerate(sizes.items())
            ),
            click(client, b, "u2", "other"),
        )
        assert answers == [202] * 9
        total = sum(sizes.values())
        got = await until(mine, balance_at(total))
        also = await until(mine_too, balance_at(total))
        seen = await stream.until(balance_reached(total))
        their = await until(theirs, balance_at(1))

    # The same events, in the same order, with the same ids, as the event stream's.
    assert as_blocks([snapshots[0], *got]) == sse_blocks([sse_snapshot, *seen])
    assert as_blocks(got) == as_blocks(also)
    clicks = [m["data"]["idempotencyKey"] for m in got if m["event"] == "click"]
    assert sorted(clicks) == sorted(sizes)
    assert [m["data"]["idempotencyKey"] for m in their if m["event"] == "click"] == ["other"]


async def test_a_reconnect_from_an_event_id_gets_exactly_the_missed_events(
    serve_api: StartApi, worker: WorkerProcess
) -> None:
    api = serve_api()
    async with httpx.AsyncClient(timeout=10) as client:
        async with socket(api, api.auth("u1")) as ws:
            await received(ws)
            assert [await click(client, api, "u1", k) for k in ("k1", "k2")] == [202, 202]
            last = (await until(ws, balance_at(2)))[-1]["id"]
        assert [await click(client, api, "u1", k) for k in ("k3", "k4")] == [202, 202]
        async with open_stream(client, api.url, {**api.auth("u1"), "Last-Event-ID": last}) as sse:
            missed = await sse.until(balance_reached(4))
        ways: list[tuple[dict[str, str], str]] = [
            ({}, f"?lastEventId={last}"),
            ({"Last-Event-ID": last}, ""),
        ]
        for extra, query in ways:
            async with socket(api, {**api.auth("u1"), **extra}, query) as ws:
                again = await until(ws, balance_at(4))
            # No snapshot: the events after `last`, exactly, as the event stream resumes.
            assert as_blocks(again) == sse_blocks(missed), (extra, query)
            keys = [m["data"]["idempotencyKey"] for m in again if m["event"] == "click"]
            assert sorted(keys) == ["k3", "k4"]


async def test_streams_and_sockets_share_the_per_user_limit(
    serve_api: StartApi, redis_client: redis.Redis
) -> None:
    api = serve_api(MINING_EVENTS_MAX_STREAMS_PER_USER=2, MINING_EVENTS_HEARTBEAT=0.5)
    leases = Keys.event_leases("u1")

    async def open_count() -> float:
        text = (await client.get(f"{api.url}/api/metrics")).text
        line = next(x for x in text.splitlines() if x.startswith("mining_events_streams_open "))
        return float(line.split()[1])

    async with httpx.AsyncClient(timeout=10) as client:
        async with open_stream(client, api.url, api.auth("u1")), socket(api, api.auth("u1")) as ws:
            await received(ws)
            assert await open_count() == 2
            status, headers, body = await refusal(api, api.auth("u1"))
            assert status == 429
            assert (body["error"], body["limit"]) == ("too_many_streams", 2)
            assert headers["Retry-After"] == "1"
            refused = await client.get(f"{api.url}/api/mining/events", headers=api.auth("u1"))
            assert refused.status_code == 429
            async with socket(api, api.auth("u2")) as other:  # another user
                assert (await received(other))["data"]["userId"] == "u2"
        # A closed socket gives its place back when the api sees it go, before its lease ends.
        await eventually(lambda: redis_client.zcard(leases) == 0, 1.0, "leases released")
        async with socket(api, api.auth("u1")) as ws, socket(api, api.auth("u1")) as ws2:
            assert (await received(ws))["event"] == (await received(ws2))["event"] == "balance"
        await eventually(lambda: redis_client.zcard(leases) == 0, 1.0, "leases released")
        assert await open_count() == 0


async def test_heartbeats_keep_an_idle_socket_and_its_lease_alive(
    serve_api: StartApi, redis_client: redis.Redis
) -> None:
    api = serve_api(MINING_EVENTS_HEARTBEAT=0.3)
    async with socket(api, api.auth("u1")) as ws:
        assert (await received(ws))["event"] == "balance"
        started = asyncio.get_running_loop().time()
        beats = [await received(ws, 2) for _ in range(5)]
        elapsed = asyncio.get_running_loop().time() - started
        assert beats == [{"event": "heartbeat"}] * 5
        assert 1.0 < elapsed < 5  # five beats of 0.3 s (a loaded machine may be late)
        # A lease lasts three heartbeats; it has been renewed past its first expiry.
        assert redis_client.zcard(Keys.event_leases("u1")) == 1


async def test_auth_is_a_bearer_header_the_cookie_or_a_subprotocol_never_the_url(
    serve_api: StartApi,
) -> None:
    api = serve_api()
    token = api.auth("u1")["Authorization"].removeprefix("Bearer ")
    status, _, body = await refusal(api)
    assert (status, body["error"]) == (401, "unauthorized")
    assert "detail" in body
    status, _, body = await refusal(api, query=f"?token={token}&access_token={token}")
    assert (status, body["error"]) == (401, "unauthorized")
    status, _, _ = await refusal(api, {"Authorization": "Bearer not-a-token"})
    assert status == 401

    async with socket(api, {"Cookie": f"{COOKIE}={token}"}) as ws:
        assert (await received(ws))["data"]["userId"] == "u1"
        assert ws.subprotocol is None
    offered = ["crypto-mine.v1", f"bearer.{token}"]
    async with socket(api, subprotocols=offered) as ws:
        assert (await received(ws))["data"]["userId"] == "u1"
        assert ws.subprotocol == "crypto-mine.v1"
        assert ws.response is not None
        assert token not in str(ws.response.headers)  # the token is never sent back
    status, _, body = await refusal(api, subprotocols=[f"bearer.{token}"])
    assert (status, body["error"]) == (400, "invalid_subprotocol")


async def test_browser_origins_are_the_apis_own_or_those_of_cors_origin(
    serve_api: StartApi,
) -> None:
    api = serve_api(CORS_ORIGIN="https://game.example.com, https://m.example.com")
    alone = serve_api()
    auth = api.auth("u1")
    for allowed in ("https://game.example.com", "https://m.example.com", api.url, None):
        async with socket(api, auth, origin=allowed) as ws:
            assert (await received(ws))["event"] == "balance", allowed
    for refused in ("https://evil.example.com", "null", "https://game.example.com.evil.io"):
        status, _, body = await refusal(api, auth, origin=refused)
        assert (status, body["error"]) == (403, "origin_not_allowed"), refused
    status, _, _ = await refusal(alone, auth, origin="https://game.example.com")
    assert status == 403
    async with socket(alone, auth, origin=alone.url) as ws:
        assert (await received(ws))["event"] == "balance"


async def test_handshakes_count_towards_the_general_api_limit(serve_api: StartApi) -> None:
    api = serve_api(API_RATE_LIMIT=2)
    for _ in range(2):
        async with socket(api, api.auth("u1")) as ws:
            assert ws.response is not None
            assert ws.response.headers["RateLimit-Policy"] == '"api";q=2;w=60'
            await received(ws)
    status, headers, body = await refusal(api, api.auth("u1"))
    assert (status, body["error"], body["limit"]) == (429, "rate_limited", "api")
    assert int(headers["Retry-After"]) >= 1


async def test_a_closed_socket_stops_being_served(
    serve_api: StartApi, redis_client: redis.Redis
) -> None:
    api = serve_api(MINING_EVENTS_HEARTBEAT=0.3)
    ws = await connect(ws_url(api), additional_headers=api.auth("u1"), proxy=None)
    await received(ws)
    await ws.close()
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    await eventually(
        lambda: redis_client.zcard(Keys.event_leases("u1")) == 0, 2.0, "lease released"
    )


async def test_a_plain_get_of_the_socket_says_how_to_open_it(api: Api) -> None:
    answer = await api.client.get("/api/mining/ws", headers=api.auth("u1"))
    assert answer.status_code == 426
    assert answer.headers["Upgrade"] == "websocket"
    assert answer.json()["error"] == "upgrade_required"
