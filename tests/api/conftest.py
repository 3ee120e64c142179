"""The api application in-process, against the real Redis and MongoDB servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from crypto_mine.api.app import create_app
from crypto_mine.api.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.settings import Env
from devstack.servers import MongoServer, RedisServer

SECRET = "test-secret-that-is-long-enough-0123456789"

Settings = Callable[..., ApiSettings]


@pytest.fixture
def make_settings(redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str) -> Settings:
    def make(**overrides: Any) -> ApiSettings:
        environ = {
            "REDIS_URL": redis_server.url,
            "MONGODB_URI": mongo_server.uri,
            "MONGODB_DB": mongo_db,
            "JWT_SECRET": SECRET,
            "MINING_RATE_LIMIT_GLOBAL": "1000",
            "MINING_RATE_LIMIT_GLOBAL_BURST": "1000",
            "MINING_RATE_LIMIT_PER_USER": "100",
            "MINING_RATE_LIMIT_USER_BURST": "100",
            "MINING_RATE_LIMIT_PER_IP": "1000",
            "MINING_RATE_LIMIT_IP_BURST": "1000",
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


@pytest.fixture
async def start_api(
    redis_client: Any, make_settings: Settings
) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Any] = []

    async def start(**overrides: Any) -> Api:
        settings = make_settings(**overrides)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 5000)),
            base_url="http://api",
        )
        stack.append((lifespan, client))
        return Api(client, settings)

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def api(start_api: Callable[..., Any]) -> Api:
    return await start_api()  # type: ignore[no-any-return]
