"""Reading the queue depth: a Prometheus instant query, or the depth counter in Redis."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crypto_mine.common.names import Keys
from crypto_mine.operator.settings import OperatorSettings
from crypto_mine.operator.spec import MetricSpec


class MetricError(Exception):
    """The queue depth could not be read; the message says where and why."""


async def read_queue_depth(
    metric: MetricSpec, settings: OperatorSettings, http: aiohttp.ClientSession
) -> float:
    """The current queue depth (clicks waiting), or :class:`MetricError`."""
    if metric.source == "redis":
        url = metric.redis_url or settings.redis_url
        if not url:
            raise MetricError("no Redis URL: set spec.metric.redisUrl or the operator's REDIS_URL")
        return await read_redis_depth(url, settings.metric_timeout)
    url = metric.prometheus_url or settings.prometheus_url
    if not url:
        raise MetricError(
            "no Prometheus URL: set spec.metric.prometheusUrl or the operator's PROMETHEUS_URL"
        )
    return await query_prometheus(http, url, metric.query, settings.metric_timeout)


async def query_prometheus(
    http: aiohttp.ClientSession, base_url: str, query: str, time_limit: float
) -> float:
    """The value of an instant query: a scalar, or the sum of a vector's samples."""
    endpoint = base_url.rstrip("/") + "/api/v1/query"
    where = f"Prometheus at {redact(base_url)}"
    try:
        async with http.get(
            endpoint, params={"query": query}, timeout=aiohttp.ClientTimeout(total=time_limit)
        ) as response:
            payload: Any = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise MetricError(f"{where}: {describe(error)}") from error
    if not isinstance(payload, dict) or payload.get("status") != "success":
        detail = payload.get("error") if isinstance(payload, dict) else payload
        raise MetricError(f"{where}: query {query!r} failed: {detail}")
    try:
        data = payload["data"]
        if data["resultType"] == "scalar":
            value = float(data["result"][1])
        elif data["resultType"] == "vector":
            if not data["result"]:
                raise MetricError(f"{where}: query {query!r} returned no series")
            value = sum(float(sample["value"][1]) for sample in data["result"])
        else:
            raise MetricError(
                f"{where}: query {query!r} returned a {data['resultType']}, not a vector or scalar"
            )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise MetricError(f"{where}: unexpected answer to {query!r}: {describe(error)}") from error
    return _finite(value, f"{where}: query {query!r}")


async def read_redis_depth(url: str, time_limit: float) -> float:
    """The depth counter the api and worker keep in Redis; a missing key is an empty queue."""
    where = f"Redis at {redact(url)}"
    client = aioredis.Redis.from_url(
        url, socket_timeout=time_limit, socket_connect_timeout=time_limit
    )
    try:
        raw = await client.get(Keys.queue_depth)
    except (RedisError, OSError) as error:
        raise MetricError(f"{where}: {describe(error)}") from error
    finally:
        await client.aclose()
    if raw is None:
        return 0.0
    try:
        return _finite(float(raw), f"{where}: key {Keys.queue_depth}")
    except ValueError:
        shown = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise MetricError(
            f"{where}: key {Keys.queue_depth} holds {shown!r}, not a number"
        ) from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def describe(error: BaseException) -> str:
    """``Type: message``, or the type alone for exceptions without a message (timeouts)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise MetricError(f"{what} returned {value}")
    return value
