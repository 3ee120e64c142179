"""Whether Redis keeps what it holds for the clicks: readiness fails on an evicting Redis.

Accepted clicks live in Redis until a worker has applied them (the RQ queue, the jobs' click
lists, the depth counter), and so do their idempotency records. A ``maxmemory-policy`` other
than ``noeviction`` lets Redis delete any of them when memory runs short, silently: the api then
reports itself not ready (``/readyz`` 503, ``checks.redis`` says why), so it takes no clicks it
could lose. With ``noeviction`` a full Redis refuses writes instead, and clicks are answered
``503`` (retry later), never lost.

Persistence and replication are reported by ``/api/health`` (``redis``), not enforced: an
append-only file (``appendonly yes``, ``appendfsync everysec`` or ``always``) keeps queued clicks
across a Redis restart, and ``min-replicas-to-write`` keeps a primary that lost its replicas
from accepting clicks a failover would drop. README, "Redis settings that keep queued clicks".
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"


class UnsafeRedis(Exception):
    """Redis may delete queued clicks."""


async def durability(redis: Redis) -> dict[str, Any]:
    """What Redis says about eviction, persistence and replicas (``INFO``, allowed by ACLs
    that refuse ``CONFIG``, as managed services do)."""
    info: dict[str, Any] = await redis.info("memory", "persistence", "replication")
    replicas = info.get("min_slaves_good_slaves")
    return {
        "maxmemoryPolicy": str(info.get("maxmemory_policy", "unknown")),
        "appendOnly": bool(int(info.get("aof_enabled", 0))),
        "role": str(info.get("role", "unknown")),
        "connectedReplicas": int(info.get("connected_slaves", 0)),
        "goodReplicasForWrites": None if replicas is None else int(replicas),
    }


async def check_no_eviction(redis: Redis) -> None:
    """Raise :class:`UnsafeRedis` unless Redis is reachable and evicts nothing."""
    try:
        policy = (await durability(redis))["maxmemoryPolicy"]
    except ResponseError as error:  # INFO refused: nothing to check against, only to say so
        log.warning("maxmemory-policy of Redis unknown (%s); it must be noeviction", error)
        await redis.ping()
        return
    if policy != SAFE_POLICY:
        raise UnsafeRedis(
            f"maxmemory-policy is {policy}, which can evict queued clicks; set noeviction"
        )
