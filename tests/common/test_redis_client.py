"""The asyncio Redis client packs commands with hiredis: the same bytes, the same errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from crypto_mine.common.redis import PACKED, async_redis_client
from crypto_mine.common.settings import RedisSettings
from devstack.servers import RedisServer

pytestmark = pytest.mark.anyio

ARGUMENTS: list[tuple[Any, ...]] = [
    ("PING",),
    ("CONFIG GET", "maxmemory"),  # a command name of two words
    (b"CLIENT LIST",),
    ("SET", "k", "välue with spaces"),
    ("EVALSHA", "abc", 2, "k1", b"k2", 7, -3, 2.5, 1e-7, "", b""),
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", bytearray(b"array")),
]


@pytest.mark.parametrize("args", ARGUMENTS, ids=repr)
def test_packed_as_redis_py_packs_it(args: tuple[Any, ...]) -> None:
    packed = PACKED[Connection]()
    python = Connection()
    assert b"".join(packed.pack_command(*args)) == b"".join(
        bytes(part) for part in python.pack_command(*args)
    )


@pytest.mark.parametrize("value", [True, None, object()], ids=repr)
def test_unpackable_arguments_raise_data_error(value: Any) -> None:
    with pytest.raises(DataError):
        PACKED[Connection]().pack_command("SET", "k", value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6379/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
async def test_every_scheme_keeps_its_connection_kind(url: str, expected: type) -> None:
    client = async_redis_client(RedisSettings(url=url))
    try:
        chosen = client.connection_pool.connection_class
        assert issubclass(chosen, expected)
        assert chosen is PACKED[expected]
    finally:
        await client.aclose()


async def test_round_trip_through_a_real_redis(redis_server: RedisServer) -> None:
    client: redis.asyncio.Redis = async_redis_client(
        RedisSettings(url=redis_server.url), decode_responses=True
    )
    try:
        values = [f"välue {n}" for n in range(500)]  # one command far above a socket buffer
        script = client.register_script("return ARGV")
        assert await script(keys=[], args=values) == values
        async with client.pipeline(transaction=True) as pipe:
            pipe.set("packed:k", 2.5)
            pipe.incrbyfloat("packed:k", 1)
            pipe.get("packed:k")
            assert await pipe.execute() == [True, 3.5, "3.5"]
    finally:
        await client.delete("packed:k")
        await client.aclose()


async def test_callers_wait_for_a_busy_pool_within_the_socket_timeout(
    redis_server: RedisServer,
) -> None:
    """Twelve calls of 0.1 s through two connections: they wait their turn (about 0.6 s), where
    a pool that raises when exhausted failed ten of them at once."""
    client = async_redis_client(
        RedisSettings(url=redis_server.url, socket_timeout=5), max_connections=2
    )
    try:
        results = await asyncio.gather(*(client.blpop([f"nothing:{n}"], 0.1) for n in range(12)))
        assert results == [None] * 12
    finally:
        await client.aclose()


async def test_the_wait_for_a_connection_is_bounded(redis_server: RedisServer) -> None:
    """One connection held 0.25 s at a time, waits bounded by 0.3 s: the third caller (about
    0.5 s behind) gets an error, it does not hang."""
    client = async_redis_client(
        RedisSettings(url=redis_server.url, socket_timeout=0.3), max_connections=1
    )
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.blpop([f"nothing:{n}"], 0.25) for n in range(3)), return_exceptions=True
        )
        assert results[0] is None
        assert isinstance(results[2], redis.exceptions.ConnectionError), results
        assert "No connection available" in str(results[2])
        assert time.monotonic() - started < 2
    finally:
        await client.aclose()
