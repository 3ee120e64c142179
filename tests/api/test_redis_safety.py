"""An evicting Redis makes the api not ready; /api/health tells persistence and replicas."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from devstack.servers import RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "policy", ["allkeys-lru", "allkeys-random", "volatile-lru", "volatile-ttl"]
)
async def test_an_evicting_redis_makes_the_api_not_ready(
    start_api: Any, private_redis: RedisServer, policy: str
) -> None:
    api: Api = await start_api(REDIS_URL=private_redis.url)
    admin = redis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert (await api.client.get("/readyz")).status_code == 200
        admin.config_set("maxmemory-policy", policy)
        ready = await api.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {
            "redis": f"unsafe: maxmemory-policy is {policy}, which can evict queued clicks; "
            "set noeviction",
            "mongodb": "ok",
        }
        health = (await api.client.get("/api/health")).json()
        assert health["status"] == "degraded"
        assert health["redis"]["maxmemoryPolicy"] == policy
        admin.config_set("maxmemory-policy", "noeviction")
        assert (await api.client.get("/readyz")).status_code == 200
    finally:
        admin.close()


async def test_health_reports_persistence_and_replicas(
    start_api: Any, private_redis: RedisServer
) -> None:
    api: Api = await start_api(REDIS_URL=private_redis.url)
    admin = redis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        admin.config_set("appendonly", "no")
        before = (await api.client.get("/api/health")).json()["redis"]
        assert before == {
            "maxmemoryPolicy": "noeviction",
            "appendOnly": False,
            "role": "master",
            "connectedReplicas": 0,
            "goodReplicasForWrites": None,
        }
        admin.config_set("appendonly", "yes")
        admin.config_set("min-replicas-to-write", "1")
        after = (await api.client.get("/api/health")).json()["redis"]
        assert (after["appendOnly"], after["goodReplicasForWrites"]) == (True, 0)
    finally:
        admin.config_set("min-replicas-to-write", "0")
        admin.close()
