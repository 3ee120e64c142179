"""Reads of small Redis hashes, coalesced: many concurrent reads, one pipeline round trip.

Click status and balance reads come in bursts (clients poll right after their clicks). Each
read taking a connection of its own would need as many connections as reads in flight; here
they wait in a list while ``READ_CONCURRENCY`` pipelines are in flight, and the next pipeline
carries them all (``batching.py``). A read waits at most ``2 x REDIS_SOCKET_TIMEOUT``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from .batching import Batcher

READ_CONCURRENCY = 4
READ_MAX_KEYS = 256


class Reads:
    def __init__(self, redis: Redis, socket_timeout: float) -> None:
        self.redis = redis
        self.batcher: Batcher[str, dict[str, str]] = Batcher(
            self._run,
            concurrency=READ_CONCURRENCY,
            max_weight=READ_MAX_KEYS,
            timeout=2 * socket_timeout,
            what="a Redis read",
        )

    async def hash(self, key: str) -> dict[str, str]:
        """``HGETALL key`` (``{}`` when the key does not exist)."""
        return await self.batcher.submit(key)

    async def close(self) -> None:
        await self.batcher.close()

    async def _run(self, keys: list[str]) -> list[dict[str, str]]:
        pipe: Any = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        results: list[dict[str, str]] = await pipe.execute()
        return results
