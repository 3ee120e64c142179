"""Reading the queue depth from a real Redis, and failing clearly when it cannot be read."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import redis
from aiohttp import web

from crypto_mine.common.names import Keys
from crypto_mine.common.settings import Env
from crypto_mine.operator.queue_depth import (
    MetricError,
    query_prometheus,
    read_queue_depth,
    read_redis_depth,
    redact,
)
from crypto_mine.operator.settings import OperatorSettings
from crypto_mine.operator.spec import MetricSpec
from devstack.servers import RedisServer, free_port


def test_missing_key_is_an_empty_queue(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    assert asyncio.run(read_redis_depth(redis_server.url, 1.0)) == 0.0


def test_reads_the_depth_counter(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set(Keys.queue_depth, 1234)
    assert asyncio.run(read_redis_depth(redis_server.url, 1.0)) == 1234.0


def test_garbage_in_the_key_is_a_metric_error(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.set(Keys.queue_depth, "lots")
    with pytest.raises(MetricError, match="does not hold a number") as caught:
        asyncio.run(read_redis_depth(redis_server.url, 1.0))
    assert "lots" not in str(caught.value)


def test_unreachable_redis_fails_fast_and_hides_the_password() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(MetricError) as caught:
        asyncio.run(read_redis_depth(url, 0.5))
    assert time.monotonic() - started < 5
    assert "s3cret" not in str(caught.value)
    assert "user:***@127.0.0.1" in str(caught.value)


def test_redis_url_falls_back_to_the_operators_environment(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.set(Keys.queue_depth, 7)
    metric = MetricSpec("redis", "unused", None, None)

    async def read(settings: OperatorSettings) -> float:
        async with aiohttp.ClientSession() as http:
            return await read_queue_depth(metric, settings, http)

    assert asyncio.run(read(OperatorSettings(redis_url=redis_server.url))) == 7.0
    with pytest.raises(MetricError, match="no Redis URL"):
        asyncio.run(read(OperatorSettings()))


def test_unreachable_prometheus_is_a_metric_error() -> None:
    async def query() -> float:
        async with aiohttp.ClientSession() as http:
            return await query_prometheus(http, f"http://127.0.0.1:{free_port()}", "up", 1.0)

    with pytest.raises(MetricError, match=r"Prometheus at http://127\.0\.0\.1"):
        asyncio.run(query())


SECRET = "s3cret-token-from-the-fetched-body"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, f'"{SECRET}"', "HTTP 200, the answer is not a query result"),
        (200, f"<html>{SECRET}</html>", "HTTP 200, the answer is not JSON"),
        (
            400,
            json.dumps({"status": "error", "errorType": "bad_data", "error": SECRET}),
            "HTTP 400, the query failed (bad_data)",
        ),
        (
            422,
            json.dumps({"status": "error", "errorType": SECRET, "error": SECRET}),
            "HTTP 422, the query failed",
        ),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": SECRET, "result": []}}),
            "the query returned a result of an unknown type",
        ),
        (200, json.dumps({"status": "success", "data": SECRET}), "not a query result"),
        (302, "", "HTTP 302, the answer is not JSON"),  # redirects are not followed
    ],
)
def test_conditions_never_carry_what_was_fetched(status: int, body: str, expected: str) -> None:
    """A metric source's answer reaches the operator's log at most, never a MetricError."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        headers = {"Location": "http://169.254.169.254/"} if status == 302 else {}
        return web.Response(status=status, text=body, headers=headers)

    async def query() -> float:
        app = web.Application()
        app.router.add_get("/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                return await query_prometheus(http, f"http://127.0.0.1:{port}", "up", 2.0)
        finally:
            await runner.cleanup()

    with pytest.raises(MetricError) as caught:
        asyncio.run(query())
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)
    assert seen == ["/api/v1/query"]


def test_redis_error_replies_are_not_repeated(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.rpush(Keys.queue_depth, "a list, not a counter")
    with pytest.raises(MetricError) as caught:
        asyncio.run(read_redis_depth(redis_server.url, 1.0))
    assert str(caught.value).endswith("Redis answered with an error")
    assert "WRONGTYPE" not in str(caught.value)


def test_a_url_outside_the_allow_list_is_never_fetched(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    requests: list[str] = []

    async def read(metric: MetricSpec) -> float:
        async def count(request: web.Request) -> web.Response:
            requests.append(request.path)
            return web.json_response(
                {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
            )

        app = web.Application()
        app.router.add_get("/{tail:.*}", count)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        settings = OperatorSettings.from_env(
            Env(
                {"METRIC_URL_ALLOWLIST": f"http://127.0.0.1:{port}/allowed", "LEASE_NAMESPACE": "x"}
            )
        )
        try:
            async with aiohttp.ClientSession() as http:
                return await read_queue_depth(metric, settings, http)
        finally:
            await runner.cleanup()

    port = free_port()
    refused = [
        MetricSpec("prometheus", "up", f"http://127.0.0.1:{port}/other", None),
        MetricSpec("prometheus", "up", f"http://localhost:{port}/allowed", None),
        MetricSpec("redis", "", None, redis_server.url),
    ]
    for metric in refused:
        with pytest.raises(MetricError) as caught:
            asyncio.run(read(metric))
        assert caught.value.reason == "MetricUrlNotAllowed"
        assert "is not in the operator's METRIC_URL_ALLOWLIST" in str(caught.value)
    assert requests == []
    allowed = MetricSpec("prometheus", "up", f"http://127.0.0.1:{port}/allowed", None)
    assert asyncio.run(read(allowed)) == 1.0
    assert requests == ["/allowed/api/v1/query"]


def test_prometheus_url_is_required_somewhere() -> None:
    async def read() -> float:
        async with aiohttp.ClientSession() as http:
            metric = MetricSpec("prometheus", "up", None, None)
            return await read_queue_depth(metric, OperatorSettings(), http)

    with pytest.raises(MetricError, match="no Prometheus URL"):
        asyncio.run(read())


def test_redact_leaves_urls_without_password_alone() -> None:
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://:pw@host:1/0") == "redis://:***@host:1/0"
