"""The click shards as the api sees them: each user's Redis, key names, admission and reads.

``REDIS_SHARD_URLS`` names a Redis per shard (shard 0 first); a user's clicks, records, status
and events live on the shard :func:`~crypto_mine.common.names.shard_of` gives, and each shard
has its own queue and workers. With one shard (the default) everything is on ``REDIS_URL``
under the ``{mining}`` tag, as in a deployment that never sharded. Shards that name the same
server share one client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from crypto_mine.common.names import ShardKeys, shard_of
from crypto_mine.common.redis import async_redis_client
from crypto_mine.common.settings import RedisSettings

from ..settings import ApiSettings
from .admission import Admitter
from .applied import AppliedClicks
from .reads import Reads


class Shard:
    def __init__(
        self,
        index: int,
        redis: Redis,
        redis_settings: RedisSettings,
        settings: ApiSettings,
        applied: AppliedClicks,
    ) -> None:
        self.index = index
        self.redis = redis
        self.redis_settings = redis_settings  # its server's
        self.keys = ShardKeys(index)
        self.admitter = Admitter(redis, settings, applied, index)
        self.reads = Reads(redis, settings.redis.socket_timeout)

    async def close(self) -> None:
        await self.admitter.close()
        await self.reads.close()


class Shards:
    def __init__(self, settings: ApiSettings, applied: AppliedClicks) -> None:
        clients: dict[str, Redis] = {}
        self.all: list[Shard] = []
        for index in range(settings.redis.shards):
            redis_settings = settings.redis.shard(index)
            if redis_settings.url not in clients:
                clients[redis_settings.url] = async_redis_client(
                    redis_settings, decode_responses=True
                )
            client = clients[redis_settings.url]
            self.all.append(Shard(index, client, redis_settings, settings, applied))
        self.clients = list(clients.values())

    @property
    def first(self) -> Shard:
        """Shard 0, which also holds the keys of no user (login attempts, the api limit)."""
        return self.all[0]

    def of(self, user_id: str) -> Shard:
        return self.all[shard_of(user_id, len(self.all))]

    async def close(self) -> None:
        for shard in self.all:
            await shard.close()
        for client in self.clients:
            await client.aclose()
