"""Acting as clients of the api application, in-process, against real Redis and MongoDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.settings import Env
from devstack.servers import MongoServer, RedisServer

from .allocator import TOKEN as ALLOCATOR_TOKEN

SECRET = "test-secret-that-is-long-enough-0123456789"
# Limits no test meets unless it lowers them (the general limit's own tests: test_api_limit.py).
GENEROUS_LIMITS = {
    "MINING_RATE_LIMIT_GLOBAL": "1000",
    "MINING_RATE_LIMIT_GLOBAL_BURST": "1000",
    "MINING_RATE_LIMIT_PER_USER": "100",
    "MINING_RATE_LIMIT_USER_BURST": "100",
    "MINING_RATE_LIMIT_PER_IP": "1000",
    "MINING_RATE_LIMIT_IP_BURST": "1000",
    "API_RATE_LIMIT": "0",
}

Settings = Callable[..., ApiSettings]


def settings_factory(
    redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str
) -> Settings:
    def make(**overrides: Any) -> ApiSettings:
        environ = {
            "REDIS_URL": redis_server.url,
            "MONGODB_URI": mongo_server.uri,
            "MONGODB_DB": mongo_db,
            "JWT_SECRET": SECRET,
            "ID_ALLOCATOR_TOKEN": ALLOCATOR_TOKEN,
            **GENEROUS_LIMITS,
            # Production's timeouts (0.5 s to connect to Redis, 1 s a call, 2 s for admission)
            # turn a busy machine into 503s; tests about timeouts set the ones they test.
            "REDIS_CONNECT_TIMEOUT": "5",
            "REDIS_SOCKET_TIMEOUT": "5",
            "MINING_ADMISSION_TIMEOUT": "10",
        }
        environ.update({key: str(value) for key, value in overrides.items()})
        return ApiSettings.from_env(Env(environ))

    return make


class Api:
    """An httpx client of one app instance, with helpers to act as a user."""

    def __init__(self, client: httpx.AsyncClient, settings: ApiSettings) -> None:
        self.client = client
        self.settings = settings

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, user)}"}

    async def click(self, user: str, key: str, body: Any = None, **headers: str) -> httpx.Response:
        sent = {**self.auth(user), "Idempotency-Key": key, **headers}
        if body is None:
            return await self.client.post("/api/mining/click", headers=sent)
        return await self.client.post("/api/mining/click", headers=sent, json=body)

    async def status(self, user: str, key: str) -> httpx.Response:
        return await self.client.get(
            "/api/mining/click/status", params={"key": key}, headers=self.auth(user)
        )
