"""Reading the queue depth from a real Redis, and failing clearly when it cannot be read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import aiohttp
import pytest
import redis
from aiohttp import web

from crypto_mine.common.names import Keys, ShardKeys
from crypto_mine.common.settings import Env
from crypto_mine.operator.allowlist import AllowList
from crypto_mine.operator.queue_depth import (
    MetricError,
    query_prometheus,
    read_queue_depth,
    read_redis_depth,
    redact,
)
from crypto_mine.operator.settings import OperatorSettings
from crypto_mine.operator.spec import MetricSpec, SpecError, parse_spec
from devstack.servers import RedisServer, free_port, serving
from tests.e2e.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping nothing: queries answer from PromQL alone."""
    yield from serving(PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets=[]))


def query(prometheus: PrometheusServer, promql: str) -> float:
    async def run() -> float:
        async with aiohttp.ClientSession() as http:
            return await query_prometheus(http, prometheus.url + "/", promql, 5.0)

    return asyncio.run(run())


def test_prometheus_vector_samples_are_summed(prometheus: PrometheusServer) -> None:
    two_series = (
        'label_replace(vector(3), "pod", "a", "", "")'
        ' or label_replace(vector(4.5), "pod", "b", "", "")'
    )
    assert query(prometheus, two_series) == 7.5
    assert query(prometheus, "vector(0)") == 0.0


def test_prometheus_scalar_is_its_value(prometheus: PrometheusServer) -> None:
    assert query(prometheus, "scalar(vector(42))") == 42.0


def test_prometheus_rejecting_the_query_is_a_metric_error(prometheus: PrometheusServer) -> None:
    # Prometheus's errorType, in the operator's words; never the text Prometheus sent.
    with pytest.raises(MetricError, match=r"HTTP 400, the query failed \(bad_data\)$") as caught:
        query(prometheus, "sum(")
    assert "parse error" not in str(caught.value)


def test_prometheus_empty_result_is_a_metric_error_not_an_empty_queue(
    prometheus: PrometheusServer,
) -> None:
    # No worker exports the depth (none scraped yet, or the query names a wrong metric): the
    # operator must not read that as "nothing waiting" and scale down.
    with pytest.raises(MetricError, match="returned no series"):
        query(prometheus, "sum(mining_click_queue_depth)")


def test_prometheus_range_or_string_results_are_metric_errors(
    prometheus: PrometheusServer,
) -> None:
    with pytest.raises(MetricError, match="returned a matrix, not a vector or scalar"):
        query(prometheus, "vector(1)[1m:10s]")
    with pytest.raises(MetricError, match="returned a string"):
        query(prometheus, '"text"')


@pytest.mark.parametrize(("promql", "shown"), [("vector(+Inf)", "inf"), ("vector(NaN)", "nan")])
def test_prometheus_values_that_are_no_depth_are_metric_errors(
    prometheus: PrometheusServer, promql: str, shown: str
) -> None:
    with pytest.raises(MetricError, match=f"returned {shown}$"):
        query(prometheus, promql)


def test_read_queue_depth_asks_prometheus_by_default(prometheus: PrometheusServer) -> None:
    async def read(metric: MetricSpec, settings: OperatorSettings) -> float:
        async with aiohttp.ClientSession() as http:
            return await read_queue_depth(metric, settings, http)

    from_settings = MetricSpec("prometheus", "vector(12)", None, None)
    assert asyncio.run(read(from_settings, OperatorSettings(prometheus_url=prometheus.url))) == 12
    own_url = MetricSpec("prometheus", "vector(13)", prometheus.url, None)
    closed = f"http://127.0.0.1:{free_port()}"
    allowed = AllowList.of([prometheus.url])
    settings = OperatorSettings(prometheus_url=closed, metric_urls=allowed)
    assert asyncio.run(read(own_url, settings)) == 13


def test_missing_key_is_an_empty_queue(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    assert asyncio.run(read_redis_depth(redis_server.url, 1.0)) == 0.0


def test_reads_the_depth_counter(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set(Keys.queue_depth, 1234)
    assert asyncio.run(read_redis_depth(redis_server.url, 1.0)) == 1234.0


def test_reads_the_depth_counter_of_its_shard(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.set(Keys.queue_depth, 1234)
    redis_client.set(ShardKeys(1).queue_depth, 7)
    assert asyncio.run(read_redis_depth(redis_server.url, 1.0, shard=1)) == 7.0
    spec = parse_spec({"scaleTargetRef": {"name": "w"}, "metric": {"shard": 1}})
    assert spec.metric.shard == 1
    with pytest.raises(SpecError, match=r"spec\.metric\.shard must be at least 0"):
        parse_spec({"scaleTargetRef": {"name": "w"}, "metric": {"shard": -1}})


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
