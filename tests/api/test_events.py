"""GET /api/mining/events on real api processes and a real worker: each outcome once, to its
own user only, across replicas; resume with Last-Event-ID; the per-user limit; heartbeats."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
import redis

from crypto_mine.api.http.auth import COOKIE, issue_token
from crypto_mine.common.names import Keys
from devstack.servers import wait_until
from tests.api.conftest import StartApi
from tests.support.sse import ApiProcess, Block, EventReader, balance_reached, open_stream
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def start_api(serve_api: StartApi) -> StartApi:
    """Real api processes (tests/api/conftest.py)."""
    return serve_api


async def click(
    client: httpx.AsyncClient, api: ApiProcess, user: str, key: str, clicks: int = 1
) -> httpx.Response:
    headers = {**api.auth(user), "Idempotency-Key": key}
    return await client.post(
        f"{api.url}/api/mining/click", headers=headers, json={"clicks": clicks}
    )


async def settles(read: Callable[[], Awaitable[float]], value: float) -> None:
    """``read()`` reaches ``value`` within 10 s."""
    for _ in range(100):
        if await read() == value:
            return
        await asyncio.sleep(0.1)
    assert await read() == value


def clicked(blocks: list[Block]) -> list[str]:
    return [b.data["idempotencyKey"] for b in blocks if b.event == "click"]


async def test_each_outcome_reaches_its_own_user_once_on_every_replica(
    start_api: StartApi, worker: WorkerProcess
) -> None:
    a, b = start_api(MINING_EVENTS_HEARTBEAT=1), start_api(MINING_EVENTS_HEARTBEAT=1)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, a.url, a.auth("u1")) as mine,
        open_stream(client, b.url, b.auth("u1")) as mine_too,
        open_stream(client, b.url, b.auth("u2")) as theirs,
    ):
        for stream, user in ((mine, "u1"), (mine_too, "u1"), (theirs, "u2")):
            snapshot = await stream.event()
            assert snapshot.event == "balance"
            assert snapshot.data == {"userId": user, "balance": 0, "clicks": 0, "lastClickAt": None}
            assert snapshot.id == "0-0"  # no stream yet: everything from its start is new

        keys = [f"k{i}" for i in range(12)]
        sizes = {key: 1 + i % 3 for i, key in enumerate(keys)}
        answers = await asyncio.gather(
            *(click(client, (a, b)[i % 2], "u1", key, sizes[key]) for i, key in enumerate(keys)),
            click(client, b, "u2", "other"),
        )
        assert [r.status_code for r in answers] == [202] * 13
        total = sum(sizes.values())
        got = await mine.until(balance_reached(total))
        also = await mine_too.until(balance_reached(total))
        repeat = await click(client, b, "u1", "k0", sizes["k0"])  # a replay: no new outcome
        assert repeat.status_code == 200
        assert await mine.quiet(1.5) == []
        assert await mine_too.quiet(0.1) == []
        their = await theirs.until(balance_reached(1))

    assert sorted(clicked(got)) == sorted(keys)  # each once
    assert [b.id for b in got] == [b.id for b in also]  # the same stream, seen on either replica
    ids = [tuple(map(int, str(b.id).split("-"))) for b in got]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for block in got:
        if block.event == "click":
            assert block.data["status"] == "completed"
            assert block.data["result"]["reward"] == sizes[block.data["idempotencyKey"]]
        else:
            assert block.data["userId"] == "u1"
    assert got[-1].data["balance"] == total
    assert clicked(their) == ["other"]
    assert their[-1].data == {**their[-1].data, "userId": "u2", "balance": 1, "clicks": 1}


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    start_api: StartApi, worker: WorkerProcess
) -> None:
    api = start_api()
    async with httpx.AsyncClient(timeout=10) as client:
        async with open_stream(client, api.url, api.auth("u1")) as stream:
            snapshot = await stream.event()
            for key in ("k1", "k2"):
                assert (await click(client, api, "u1", key)).status_code == 202
            seen = await stream.until(balance_reached(2))
        assert clicked(seen) == ["k1", "k2"]
        last = seen[-1].id
        assert last is not None

        # Disconnected: three more clicks are applied meanwhile.
        for key in ("k3", "k4", "k5"):
            assert (await click(client, api, "u1", key)).status_code == 202

        def applied() -> bool:
            status = httpx.get(f"{api.url}/api/mining/status", headers=api.auth("u1"))
            return bool(status.json()["clicks"] == 5)

        wait_until(applied, 20, "five clicks applied")

        resumed = {**api.auth("u1"), "Last-Event-ID": last}
        async with open_stream(client, api.url, resumed) as stream:
            missed = await stream.until(balance_reached(5))
            assert await stream.quiet(0.5) == []
        assert clicked(missed) == ["k3", "k4", "k5"]
        assert missed[0].event == "click"  # no snapshot: nothing was lost
        assert missed[-1].data["balance"] == 5

        # From the very first snapshot's id: everything since, in the same order.
        again = {**api.auth("u1"), "Last-Event-ID": str(snapshot.id)}
        async with open_stream(client, api.url, again) as stream:
            everything = await stream.until(balance_reached(5))
        assert [b.id for b in everything] == [b.id for b in seen + missed]


async def test_a_resume_point_older_than_the_stream_starts_with_a_snapshot(
    start_api: StartApi, redis_client: redis.Redis
) -> None:
    api = start_api()
    key = Keys.events("u1")
    # As the outcome writer would leave it after trimming: entries-added > length.
    for n in range(3):
        redis_client.xadd(key, {"ev": "balance", "clicks": n + 1, "balance": n + 1, "last": 0})
    first_id = str(redis_client.xrange(key)[0][0])  # type: ignore[index]
    redis_client.xtrim(key, maxlen=1, approximate=False)
    async with httpx.AsyncClient(timeout=10) as client:
        headers = {**api.auth("u1"), "Last-Event-ID": first_id}
        async with open_stream(client, api.url, headers) as stream:
            snapshot, kept = await stream.event(), await stream.event()
        assert (snapshot.event, snapshot.id) == ("balance", None)  # keeps the client's position
        assert kept.data["clicks"] == 3

        redis_client.delete(key)  # expired after its TTL
        async with open_stream(client, api.url, headers) as stream:
            assert (await stream.event()).event == "balance"

        headers["Last-Event-ID"] = "not an id"  # treated as a new connection
        async with open_stream(client, api.url, headers) as stream:
            fresh = await stream.event()
        assert fresh.event == "balance"
        assert fresh.id == "0-0"


async def test_open_streams_per_user_are_limited_across_replicas(
    start_api: StartApi, redis_client: redis.Redis
) -> None:
    heartbeat = 4  # leases live three heartbeats: 12 s, far longer than a release may take
    settings = {"MINING_EVENTS_MAX_STREAMS_PER_USER": 2, "MINING_EVENTS_HEARTBEAT": heartbeat}
    a, b = start_api(**settings), start_api(**settings)
    leases = Keys.event_leases("u1")
    async with httpx.AsyncClient(timeout=10) as client:
        async with (
            open_stream(client, a.url, a.auth("u1")),
            open_stream(client, b.url, b.auth("u1")),
        ):
            refused = await client.get(f"{a.url}/api/mining/events", headers=a.auth("u1"))
            assert refused.status_code == 429
            assert refused.json()["error"] == "too_many_streams"
            assert refused.json()["limit"] == 2
            assert refused.headers["Retry-After"] == str(heartbeat)
            async with open_stream(client, a.url, a.auth("u2")) as other:  # another user
                assert (await other.event()).event == "balance"
        # Closed streams give their places back as soon as the api sees the connection go,
        # not when their leases expire: within half a lease's life.
        released = 3 * heartbeat / 2
        await eventually(lambda: redis_client.zcard(leases) == 0, released, "leases released")
        async with (
            open_stream(client, a.url, a.auth("u1")),
            open_stream(client, a.url, a.auth("u1")),
        ):
            pass
        await eventually(lambda: redis_client.zcard(leases) == 0, released, "leases released")


async def test_a_dead_replica_holds_its_leases_for_three_heartbeats_at_most(
    start_api: StartApi, redis_client: redis.Redis
) -> None:
    heartbeat = 2
    settings = {"MINING_EVENTS_MAX_STREAMS_PER_USER": 2, "MINING_EVENTS_HEARTBEAT": heartbeat}
    a, b = start_api(**settings), start_api(**settings)
    leases = Keys.event_leases("u1")

    async def opened() -> bool:
        """Whether one more stream opens now and delivers (it is closed again after its first
        event: its own lease goes when the server sees the close, not at once)."""
        url = f"{a.url}/api/mining/events"
        async with client.stream("GET", url, headers=a.auth("u1")) as answer:
            assert answer.status_code in (200, 429)
            if answer.status_code == 429:
                return False
            reader = EventReader(answer)
            try:
                assert (await reader.event()).event == "balance"
            finally:
                await reader.close()
            return True

    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, b.url, b.auth("u1")) as held,
    ):
        await held.event()
        async with open_stream(client, a.url, a.auth("u1")):
            b.kill9()
            assert redis_client.zcard(leases) == 2
            assert not await opened(), "a dead replica's lease is held until it expires"
            deadline = asyncio.get_running_loop().time() + 3 * heartbeat + 10
            while not await opened():
                assert asyncio.get_running_loop().time() < deadline, "lease never expired"
                await asyncio.sleep(0.1)


async def test_heartbeats_keep_an_idle_stream_and_its_lease_alive(
    start_api: StartApi, redis_client: redis.Redis
) -> None:
    heartbeat = 0.3
    api = start_api(MINING_EVENTS_HEARTBEAT=heartbeat)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, api.url, api.auth("u1")) as stream,
    ):
        hint = await stream.block()
        assert hint.retry == 2000  # how long a browser waits before reconnecting
        assert (await stream.block()).event == "balance"
        started = asyncio.get_running_loop().time()
        # Each beat within ten heartbeats (a busy machine is late); never faster than the beat.
        beats = [await stream.block(10 * heartbeat) for _ in range(5)]
        elapsed = asyncio.get_running_loop().time() - started
        assert all(b.comments == ["heartbeat"] and not b.is_event for b in beats)
        assert elapsed >= 4 * heartbeat
        # Three heartbeats make a lease; it has been renewed past its first expiry.
        assert redis_client.zcard(Keys.event_leases("u1")) == 1


async def test_auth_is_a_bearer_token_or_the_cookie_never_the_url(start_api: StartApi) -> None:
    api = start_api()
    token = api.auth("u1")["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(timeout=10) as client:
        anonymous = await client.get(f"{api.url}/api/mining/events")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "unauthorized"
        in_url = await client.get(f"{api.url}/api/mining/events", params={"token": token})
        assert in_url.status_code == 401
        async with open_stream(client, api.url, {"Cookie": f"{COOKIE}={token}"}) as stream:
            assert (await stream.event()).data["userId"] == "u1"
            assert stream.response.headers["Cache-Control"] == "no-store, no-transform"
            assert stream.response.headers["X-Content-Type-Options"] == "nosniff"


async def test_streams_are_not_compressed_and_are_counted_across_processes(
    start_api: StartApi, worker: WorkerProcess
) -> None:
    api = start_api(WEB_CONCURRENCY=2)

    async def metric(name: str) -> float:
        text = (await client.get(f"{api.url}/api/metrics")).text
        values = re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return sum(float(v) for v in values)

    async with httpx.AsyncClient(timeout=10) as client:
        headers = {**api.auth("u1"), "Accept-Encoding": "gzip"}
        async with open_stream(client, api.url, headers) as one:
            assert "content-encoding" not in one.response.headers
            async with (
                open_stream(client, api.url, api.auth("u2")),
                open_stream(client, api.url, api.auth("u3")),
            ):
                await settles(lambda: metric("mining_events_streams_open"), 3)
            assert (await click(client, api, "u1", "k")).status_code == 202
            await one.until(balance_reached(1))
        await settles(lambda: metric("mining_events_streams_open"), 0)
        assert await metric('mining_events_sent_total{event="click"}') == 1
        assert await metric('mining_events_sent_total{event="balance"}') == 4


def bearer(api: ApiProcess, user: str, ttl: int) -> dict[str, str]:
    """A token of its own (tokens of one user and second differ only by their lifetime)."""
    return {"Authorization": f"Bearer {issue_token(api.settings, user, ttl)}"}


async def test_a_stream_ends_when_its_token_expires(start_api: StartApi) -> None:
    api = start_api(MINING_EVENTS_HEARTBEAT=0.5)
    headers = bearer(api, "u1", 2)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        open_stream(client, api.url, headers) as stream,
    ):
        assert (await stream.event()).event == "balance"
        end = await stream.event(within=5)
        assert (end.event, end.data) == ("end", {"reason": "token_expired"})
        with pytest.raises(EOFError):
            await stream.block(within=2)
        await asyncio.sleep(0.5)
        expired = await client.get(f"{api.url}/api/mining/events", headers=headers)
        assert expired.status_code == 401  # the client comes back with a fresh token


async def test_logout_clears_the_cookie_and_ends_the_token_s_streams_on_every_replica(
    start_api: StartApi,
) -> None:
    a, b = start_api(MINING_EVENTS_HEARTBEAT=0.5), start_api(MINING_EVENTS_HEARTBEAT=0.5)
    signed_out, other = bearer(a, "u1", 3600), bearer(a, "u1", 3601)
    async with httpx.AsyncClient(timeout=10) as client:
        async with (
            open_stream(client, a.url, signed_out) as on_a,
            open_stream(client, b.url, signed_out) as on_b,
            open_stream(client, b.url, other) as kept,
        ):
            for stream in (on_a, on_b, kept):
                assert (await stream.event()).event == "balance"
            answer = await client.post(f"{a.url}/api/auth/logout", headers=signed_out)
            assert answer.status_code == 204, answer.text
            cleared = answer.headers["set-cookie"]
            assert cleared.startswith(f"{COOKIE}=")
            assert "max-age=0" in cleared.lower()
            for stream in (on_a, on_b):
                end = await stream.event(within=5)
                assert (end.event, end.data) == ("end", {"reason": "signed_out"})
            assert await kept.quiet(1.0) == []  # another token of the same user goes on
            assert (await click(client, b, "u1", "k")).status_code == 202
        for api in (a, b):  # the signed-out token opens no stream any more
            refused = await client.get(f"{api.url}/api/mining/events", headers=signed_out)
            assert refused.status_code == 401
            assert "signed out" in refused.json()["detail"]


async def test_logout_with_the_cookie_only_from_this_site(start_api: StartApi) -> None:
    api = start_api()
    token = issue_token(api.settings, "u1")
    async with httpx.AsyncClient(timeout=10) as client:
        cookie = {"Cookie": f"{COOKIE}={token}"}
        forged = await client.post(
            f"{api.url}/api/auth/logout", headers={**cookie, "Sec-Fetch-Site": "cross-site"}
        )
        assert forged.status_code == 403
        own = await client.post(
            f"{api.url}/api/auth/logout", headers={**cookie, "Sec-Fetch-Site": "same-origin"}
        )
        assert own.status_code == 204
        assert (await client.post(f"{api.url}/api/auth/logout")).status_code == 401
