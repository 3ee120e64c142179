"""Reading the queue: its depth (a Prometheus instant query, or the depth counter in Redis),
the age of its oldest job, and the rate clicks are applied at (Prometheus)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crypto_mine.common.names import ShardKeys
from crypto_mine.pipeline.queue_stats import read_stats

from .settings import OperatorSettings
from .spec import MetricSpec

log = logging.getLogger(__name__)


class MetricError(Exception):
    """The queue depth could not be read.

    The message says where and why in words of the operator's own: it ends up in the
    QueueAutoscaler's conditions and Events, which its author reads, so it never carries text
    fetched from the metric source. ``reason`` is the condition's reason.
    """

    def __init__(self, message: str, reason: str = "FailedGetMetric") -> None:
        super().__init__(message)
        self.reason = reason


# Prometheus's documented errorType values: safe to repeat, unlike its error text.
PROMETHEUS_ERROR_TYPES = frozenset(
    {"timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found"}
)
RESULT_TYPES = frozenset({"matrix", "vector", "scalar", "string"})
# An instant query for one number answers in a few hundred bytes; more is read no further.
MAX_ANSWER_BYTES = 1 << 20


async def read_queue_depth(
    metric: MetricSpec, settings: OperatorSettings, http: aiohttp.ClientSession
) -> float:
    """The current queue depth (clicks waiting), or :class:`MetricError`."""
    if metric.source == "redis":
        url = _redis_url(metric, settings)
        return await read_redis_depth(url, settings.metric_timeout, metric.shard)
    url = _prometheus_url(metric, settings)
    return await query_prometheus(http, url, metric.query, settings.metric_timeout)


async def read_lag(
    metric: MetricSpec, settings: OperatorSettings, http: aiohttp.ClientSession
) -> float:
    """Seconds the oldest waiting job has waited: ``metric.lagQuery``, or the queue's head."""
    if metric.source == "redis":
        url = _redis_url(metric, settings)
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=settings.metric_timeout,
            socket_connect_timeout=settings.metric_timeout,
        )
        try:
            return (await read_stats(client, metric.shard)).lag_seconds
        except (RedisError, OSError) as error:
            raise MetricError(f"Redis at {redact(url)}: {_failure(error)}") from error
        except ValueError:
            raise MetricError(
                f"Redis at {redact(url)}: the queue's keys do not hold numbers"
            ) from None
        finally:
            await client.aclose()
    url = _prometheus_url(metric, settings)
    return await query_prometheus(http, url, metric.lag_query, settings.metric_timeout)


async def read_drain_rate(
    metric: MetricSpec, settings: OperatorSettings, http: aiohttp.ClientSession
) -> float:
    """Clicks applied per second, all replicas together (``metric.drainRateQuery``)."""
    url = _prometheus_url(metric, settings)
    return await query_prometheus(http, url, metric.drain_rate_query, settings.metric_timeout)


def _redis_url(metric: MetricSpec, settings: OperatorSettings) -> str:
    """The spec's own URL, else the operator's Redis of the spec's shard."""
    url = _allowed(metric.redis_url, settings)
    if not url and metric.shard > 0:
        if metric.shard >= len(settings.redis_shard_urls):
            raise MetricError(
                f"spec.metric.shard is {metric.shard}: the operator's REDIS_SHARD_URLS names "
                f"{len(settings.redis_shard_urls) or 1} shard(s); set spec.metric.redisUrl"
            )
        url = settings.redis_shard_urls[metric.shard]
    url = url or settings.redis_url
    if not url:
        raise MetricError("no Redis URL: set spec.metric.redisUrl or the operator's REDIS_URL")
    return url


def _prometheus_url(metric: MetricSpec, settings: OperatorSettings) -> str:
    url = _allowed(metric.prometheus_url, settings) or settings.prometheus_url
    if not url:
        raise MetricError(
            "no Prometheus URL: set spec.metric.prometheusUrl or the operator's PROMETHEUS_URL"
        )
    return url


def _allowed(url: str | None, settings: OperatorSettings) -> str | None:
    """The spec's own URL if the allow-list admits it; nothing is fetched from one it does not."""
    if url is None or settings.metric_urls.admits(url):
        return url
    raise MetricError(
        f"{redact(url)} is not in the operator's METRIC_URL_ALLOWLIST", "MetricUrlNotAllowed"
    )


async def query_prometheus(
    http: aiohttp.ClientSession, base_url: str, query: str, time_limit: float
) -> float:
    """The value of an instant query: a scalar, or the sum of a vector's samples."""
    endpoint = base_url.rstrip("/") + "/api/v1/query"
    where = f"Prometheus at {redact(base_url)}"
    try:
        async with http.get(
            endpoint,
            params={"query": query},
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as response:
            status = response.status
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
    except TimeoutError as error:
        raise MetricError(f"{where}: no answer within {time_limit:g}s") from error
    except aiohttp.ClientError as error:
        raise MetricError(f"{where}: {_failure(error)}") from error
    if len(body) > MAX_ANSWER_BYTES:
        raise MetricError(f"{where}: HTTP {status}, the answer exceeds {MAX_ANSWER_BYTES} bytes")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        raise MetricError(f"{where}: HTTP {status}, the answer is not JSON") from None
    if not isinstance(payload, dict):
        raise MetricError(f"{where}: HTTP {status}, the answer is not a query result")
    if payload.get("status") != "success":
        kind = payload.get("errorType")
        known = f" ({kind})" if kind in PROMETHEUS_ERROR_TYPES else ""
        # The error text is Prometheus's (it can quote the query): the log only, shortened.
        log.warning("%s: query failed: %.200s", where, str(payload.get("error")))
        raise MetricError(f"{where}: HTTP {status}, the query failed{known}")
    try:
        data = payload["data"]
        kind = data["resultType"]
        if kind == "scalar":
            value = float(data["result"][1])
        elif kind == "vector":
            if not data["result"]:
                raise MetricError(f"{where}: the query returned no series")
            value = sum(float(sample["value"][1]) for sample in data["result"])
        else:
            shown = kind if kind in RESULT_TYPES else "result of an unknown type"
            raise MetricError(f"{where}: the query returned a {shown}, not a vector or scalar")
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise MetricError(f"{where}: the answer is not a query result") from error
    return _finite(value, f"{where}: the query")


async def read_redis_depth(url: str, time_limit: float, shard: int = 0) -> float:
    """The depth counter the api and worker keep in a shard's Redis; a missing key is an empty
    queue."""
    where = f"Redis at {redact(url)}"
    key = ShardKeys(shard).queue_depth
    client = aioredis.Redis.from_url(
        url, socket_timeout=time_limit, socket_connect_timeout=time_limit
    )
    try:
        raw = await client.get(key)
    except (RedisError, OSError) as error:
        raise MetricError(f"{where}: {_failure(error)}") from error
    finally:
        await client.aclose()
    if raw is None:
        return 0.0
    try:
        return _finite(float(raw), f"{where}: key {key}")
    except ValueError:
        raise MetricError(f"{where}: key {key} does not hold a number") from None


def _failure(error: BaseException) -> str:
    """What went wrong, in the operator's words: server-sent text (a Redis error reply, an
    HTTP reason phrase) is never repeated."""
    if isinstance(error, AuthenticationError):
        return "authentication failed"
    if isinstance(error, (RedisTimeoutError, TimeoutError, aiohttp.ServerTimeoutError)):
        return "timed out"
    if isinstance(error, ResponseError):
        return "Redis answered with an error"
    if isinstance(error, (RedisConnectionError, OSError, aiohttp.ClientConnectionError)):
        return f"cannot connect ({type(error).__name__})"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"HTTP {error.status}"
    return type(error).__name__


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise MetricError(f"{what} returned {value}")
    return value
