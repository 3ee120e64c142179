"""Names every component agrees on: the queue, Redis keys, MongoDB collections, metrics.

Keys that meet in one Lua script share their shard's hash tag (``{mining}`` for shard 0), so
they land in one slot.
A user id inside a key name is percent-encoded (:func:`key_part`), so it never holds a ``:``
and no two (user, idempotency key) pairs can share a name.
"""

from __future__ import annotations

import zlib
from urllib.parse import quote

QUEUE_NAME = "mining-clicks"
# The api names the worker's job function by its dotted path; it never imports the worker.
APPLY_CLICKS_JOB = "crypto_mine.worker.jobs.apply_clicks"
# Every job keeps retries for crashes and transient failures; only poison is dead-lettered.
JOB_RETRIES = 1000
# Seconds a finished job stays in Redis (0 would make RQ mark a recovered job as failed).
JOB_RESULT_TTL = 60
# Seconds a dead-lettered job stays in the failed registry.
JOB_FAILURE_TTL = 7 * 86_400

KEY_TAG = "{mining}"


def key_part(value: str) -> str:
    """``value`` percent-encoded (RFC 3986 unreserved characters kept): no ``:``, no ``{``.

    The encoding is one-to-one, so names built as ``prefix:<part>:<rest>`` stay distinct for
    distinct (part, rest) pairs; numeric and alphanumeric ids come out unchanged.
    """
    if value.isascii() and value.isalnum():  # every id the id-allocator hands out
        return value
    return quote(value, safe="")


class ShardKeys:
    """Redis key names of one shard. Every key the click path writes starts with the shard's tag.

    Users are spread over the shards by :func:`shard_of`; everything keyed by a user (buckets,
    click records, status, events, signed-out tokens) lives on the user's shard, each shard
    with its own queue (:func:`queue_name`). Keys of no user (the general api limit, login and
    sign-up attempts) live on shard 0. Shard 0's tag is ``{mining}``, so one shard is exactly
    the layout of a deployment that never sharded.
    """

    def __init__(self, shard: int = 0) -> None:
        self.tag = tag = shard_tag(shard)
        self.global_bucket = f"{tag}:rl:global"
        # Clicks accepted and not yet applied (the `mining_click_queue_depth` source).
        self.queue_depth = f"{tag}:queue:depth"
        # Job id -> clicks it carries; removing a job from it is what decrements the depth, once.
        self.queue_jobs = f"{tag}:queue:jobs"
        # The job still waiting at the tail of the queue, which admission may add clicks to.
        self.open_job = f"{tag}:queue:open"
        # Prefix of the click lists: one Redis list of click JSON per job.
        self.batch_prefix = f"{tag}:batch:"
        # The pod that exports `mining_click_queue_depth` (one at a time, so sums are right).
        self.depth_reporter = f"{tag}:queue:depth-reporter"
        # Where the sweep of marks left by killed workers goes on: the last balance _id it read.
        self.mark_sweep = f"{tag}:ledger:sweep-after"

    def batch(self, job_id: str) -> str:
        """The clicks of one job, a list of JSON strings."""
        return f"{self.batch_prefix}{job_id}"

    def user_bucket(self, user_id: str) -> str:
        return f"{self.tag}:rl:user:{key_part(user_id)}"

    def ip_bucket(self, ip: str) -> str:
        return f"{self.tag}:rl:ip:{ip}"

    def api_bucket(self, ip: str) -> str:
        """The general limit of the /api/* routes for one client IP."""
        return f"{self.tag}:rl:api:{ip}"

    def click(self, user_id: str, idempotency_key: str) -> str:
        """The idempotency record of one click, which is also its status (``records.py``)."""
        return f"{self.tag}:click:{key_part(user_id)}:{idempotency_key}"

    def user_status(self, user_id: str) -> str:
        """Cached balance, click count and last click of one user."""
        return f"{self.tag}:status:{key_part(user_id)}"

    def events(self, user_id: str) -> str:
        """The user's event stream: click outcomes and balance changes, in order."""
        return f"{self.tag}:events:{key_part(user_id)}"

    def event_leases(self, user_id: str) -> str:
        """The user's open event streams (sorted set: connection -> lease expiry in ms)."""
        return f"{self.tag}:events-open:{key_part(user_id)}"

    def signed_out(self, token_id: str) -> str:
        """Present while a token signed out by logout would still be valid."""
        return f"{self.tag}:signed-out:{token_id}"

    def login_attempts(self, scope: str, subject: str) -> str:
        return f"{self.tag}:login:{scope}:{subject}"

    def register_attempts(self, ip: str) -> str:
        return f"{self.tag}:register:ip:{ip}"


def shard_tag(shard: int) -> str:
    return KEY_TAG if shard == 0 else f"{{mining-{shard}}}"


def queue_name(shard: int) -> str:
    """The RQ queue of one shard's clicks."""
    return QUEUE_NAME if shard == 0 else f"{QUEUE_NAME}-{shard}"


def shard_of_queue(name: str) -> int:
    """The shard whose queue is called ``name`` (:func:`queue_name`)."""
    return int(name.removeprefix(f"{QUEUE_NAME}-")) if name != QUEUE_NAME else 0


def shard_of(user_id: str, shards: int) -> int:
    """The shard of a user: a stable hash (CRC-32 of the id), the same in every process."""
    return zlib.crc32(user_id.encode()) % shards if shards > 1 else 0


# Shard 0, the only one of a deployment that does not shard.
Keys = ShardKeys(0)


class Ttl:
    """Default lifetimes, in seconds."""

    idempotency = 86_400  # click records of clicks not yet applied, or failed
    window = 300  # click records of completed clicks; MongoDB answers for them after it
    status_cache = 300  # cached balance of a user


class Collections:
    """MongoDB collection names."""

    clicks = "clicks"
    balances = "balances"
    batches = "batches"
    users = "users"
    counters = "counters"


class Metrics:
    """Metric names of SPEC §7, exactly."""

    click_requests = "mining_click_requests_total"
    queue_depth = "mining_click_queue_depth"
    worker_processed = "mining_worker_processed_total"
    worker_failed = "mining_worker_failed_total"
    worker_lag = "mining_worker_lag_seconds"
    redis_latency = "redis_latency_ms"
    http_duration = "http_request_duration_seconds"
    # Beyond SPEC §7: every HTTP answer, the status cache, the MongoDB driver's view.
    http_requests = "http_requests_total"
    dead_letters = "mining_queue_dead_letters"
    status_cache = "mining_status_cache_requests_total"
    mongo_command_duration = "mongodb_client_command_duration_seconds"
    mongo_command_failures = "mongodb_client_command_failures_total"
    mongo_pool_connections = "mongodb_client_pool_connections"
    mongo_pool_in_use = "mongodb_client_pool_connections_in_use"
    mongo_pool_max = "mongodb_client_pool_max_connections"
    mongo_pool_waiting = "mongodb_client_pool_waiting"
    mongo_checkout_failures = "mongodb_client_pool_checkout_failures_total"
    mongo_writable = "mongodb_client_writable"
