"""Redis client factories with bounded timeouts, from :class:`RedisSettings`."""

from __future__ import annotations

from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import DataError

from .settings import RedisSettings


def redis_client(settings: RedisSettings, *, decode_responses: bool = False) -> redis.Redis:
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        health_check_interval=30,
        decode_responses=decode_responses,
    )


class HiredisPacking(AbstractConnection):
    """Commands packed by hiredis, in C, as redis-py's synchronous client packs them.

    Its asyncio connections pack every argument in Python, which is most of the api's own
    cost of an admission call (several arguments per click).
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a bytearray (the rare case: converted only then), or no value at all
            args = tuple(bytes(arg) if isinstance(arg, bytearray) else arg for arg in args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as error:
            raise DataError(str(error)) from None


class PackedConnection(HiredisPacking, Connection):
    pass


class PackedSSLConnection(HiredisPacking, SSLConnection):
    pass


class PackedUnixDomainSocketConnection(HiredisPacking, UnixDomainSocketConnection):
    pass


PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: PackedConnection,
    SSLConnection: PackedSSLConnection,
    UnixDomainSocketConnection: PackedUnixDomainSocketConnection,
}


def async_redis_client(
    settings: RedisSettings, *, decode_responses: bool = False, max_connections: int = 64
) -> redis.asyncio.Redis:
    """A client whose callers wait for a free connection (at most ``REDIS_SOCKET_TIMEOUT``)
    when all ``max_connections`` are busy, instead of failing at once."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.url,
        max_connections=max_connections,
        timeout=settings.socket_timeout,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        health_check_interval=30,
        decode_responses=decode_responses,
    )
    pool.connection_class = PACKED.get(pool.connection_class, pool.connection_class)
    return redis.asyncio.Redis.from_pool(pool)
