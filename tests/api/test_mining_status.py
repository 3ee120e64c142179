"""GET /api/mining/status: cache, MongoDB on a miss, ETag/304, Cache-Control, Redis down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from crypto_mine.common.names import Collections, Keys
from crypto_mine.pipeline.status_cache import WRITE_SCRIPT
from devstack.servers import MongoServer, RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def balances(mongo_server: MongoServer, mongo_db: str) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[mongo_db][Collections.balances]
    client.close()


async def get(api: Api, user: str, **headers: str) -> Any:
    return await api.client.get("/api/mining/status", headers={**api.auth(user), **headers})


async def test_miss_reads_mongodb_and_fills_the_cache(
    api: Api, balances: Any, redis_client: redis.Redis
) -> None:
    last = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    balances.insert_one({"_id": "u1", "balance": 42, "clicks": 40, "lastClickAt": last})
    response = await get(api, "u1")
    assert response.status_code == 200
    assert response.json() == {
        "userId": "u1",
        "balance": 42,
        "clicks": 40,
        "lastClickAt": "2026-01-02T03:04:05.678+00:00",
    }
    assert response.headers["Cache-Control"] == "private, max-age=2, stale-while-revalidate=10"
    assert redis_client.hgetall(Keys.user_status("u1")) == {
        "balance": "42",
        "clicks": "40",
        "last": str(int(last.timestamp() * 1000)),
    }
    # Served from the cache now: MongoDB changes are not seen until the worker updates it.
    balances.update_one({"_id": "u1"}, {"$set": {"balance": 0}})
    assert (await get(api, "u1")).json()["balance"] == 42


async def test_the_last_click_is_read_from_its_epoch_milliseconds(api: Api, balances: Any) -> None:
    balances.insert_one({"_id": "u2", "balance": 2, "clicks": 1, "lastClickMs": 1_767_323_045_678})
    body = (await get(api, "u2")).json()
    assert body["lastClickAt"] == "2026-01-02T03:04:05.678+00:00"


async def test_unknown_user_has_zero_balance(api: Api) -> None:
    response = await get(api, "nobody")
    assert response.json() == {"userId": "nobody", "balance": 0, "clicks": 0, "lastClickAt": None}


async def test_etag_and_304(api: Api, redis_client: redis.Redis) -> None:
    redis_client.hset(Keys.user_status("u1"), mapping={"balance": 5, "clicks": 5, "last": 0})
    first = await get(api, "u1")
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    cached = await get(api, "u1", **{"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.headers["ETag"] == etag
    assert cached.content == b""
    redis_client.hset(Keys.user_status("u1"), mapping={"balance": 6, "clicks": 6})
    changed = await get(api, "u1", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


async def test_older_writes_never_replace_newer_cache(
    api: Api, balances: Any, redis_client: redis.Redis
) -> None:
    balances.insert_one({"_id": "u1", "balance": 1, "clicks": 1})
    # A worker cached a newer state; a miss path racing it must not go back in time.
    redis_client.hset(Keys.user_status("u1"), mapping={"balance": 9, "clicks": 9, "last": 0})
    write = redis_client.register_script(WRITE_SCRIPT)
    assert write(keys=[Keys.user_status("u1")], args=[1, 1, 0, 60]) == 0
    assert write(keys=[Keys.user_status("u1")], args=[10, 11, 0, 60]) == 1
    assert (await get(api, "u1")).json()["balance"] == 11


async def test_redis_down_falls_back_to_mongodb(
    start_api: Any, private_redis: RedisServer, balances: Any
) -> None:
    api: Api = await start_api(REDIS_URL=private_redis.url)
    balances.insert_one({"_id": "u1", "balance": 7, "clicks": 7})
    private_redis.stop()
    response = await get(api, "u1")
    assert response.status_code == 200
    assert response.json()["balance"] == 7
