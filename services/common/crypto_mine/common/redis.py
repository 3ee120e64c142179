"""Redis client factories with bounded timeouts, from :class:`RedisSettings`."""

from __future__ import annotations

import redis
import redis.asyncio

from .settings import RedisSettings


def redis_client(settings: RedisSettings, *, decode_responses: bool = False) -> redis.Redis:
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        health_check_interval=30,
        decode_responses=decode_responses,
    )


def async_redis_client(
    settings: RedisSettings, *, decode_responses: bool = False, max_connections: int = 64
) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        health_check_interval=30,
        decode_responses=decode_responses,
        max_connections=max_connections,
    )
