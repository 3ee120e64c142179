"""``GET /api/mining/status``: the caller's balance, from the Redis cache or MongoDB on a miss.

Answers carry ``Cache-Control: private, max-age, stale-while-revalidate`` and a strong ETag;
``If-None-Match`` with the current ETag gets ``304``. With Redis down the answer still comes,
from MongoDB.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common.metrics import STATUS_CACHE
from crypto_mine.common.names import Collections
from crypto_mine.pipeline.status_cache import WRITE_SCRIPT, UserStatus

from ..admission.shards import Shards
from ..http.auth import Authenticator
from ..settings import ApiSettings
from .openapi_parts import SECURED, UNAUTHORIZED, UNAVAILABLE, Paths, json_answer, ref

log = logging.getLogger(__name__)

CACHE_HIT = STATUS_CACHE.labels("hit")
CACHE_MISS = STATUS_CACHE.labels("miss")
CACHE_ERROR = STATUS_CACHE.labels("error")


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=10).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates


class StatusEndpoint:
    def __init__(
        self,
        settings: ApiSettings,
        auth: Authenticator,
        shards: Shards,
        database: AsyncDatabase[dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.shards = shards
        self.balances = database[Collections.balances]
        self.writes = [shard.redis.register_script(WRITE_SCRIPT) for shard in shards.all]
        self.cache_control = (
            f"private, max-age={settings.status.max_age_seconds}, "
            f"stale-while-revalidate={settings.status.stale_seconds}"
        )

    async def lookup(self, user_id: str) -> UserStatus:
        shard = self.shards.of(user_id)
        key = shard.keys.user_status(user_id)
        try:
            cached = await shard.reads.hash(key)
        except (RedisError, TimeoutError) as error:
            log.warning("status cache unavailable, reading MongoDB: %s", error)
            cached, key = {}, ""
            CACHE_ERROR.inc()
        if cached:
            CACHE_HIT.inc()
            return UserStatus.from_hash(user_id, cached)
        if key:
            CACHE_MISS.inc()
        status = UserStatus.from_document(user_id, await self.balances.find_one({"_id": user_id}))
        if key:
            try:
                await self.writes[shard.index](
                    keys=[key], args=status.script_args(self.settings.status.cache_ttl_seconds)
                )
            except RedisError as error:
                log.warning("status cache not filled: %s", error)
        return status

    async def get(self, request: Request) -> Response:
        user_id = await self.auth.user_id(request)
        status = await self.lookup(user_id)
        body = orjson.dumps(status.to_json())
        etag = etag_of(body)
        headers = {
            "ETag": etag,
            "Cache-Control": self.cache_control,
            "Vary": "Authorization, Cookie",
        }
        if matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/json")


OPENAPI: Paths = {
    "/api/mining/status": {
        "get": {
            "summary": "The caller's balance, click count and last click",
            "security": SECURED,
            "parameters": [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": json_answer(
                    ref("MiningStatus"), "Current status.", ["ETag", "Cache-Control"]
                ),
                "304": {"description": "Not modified."},
                "401": UNAUTHORIZED,
                "503": UNAVAILABLE,
            },
        }
    },
}
