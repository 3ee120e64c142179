"""Names every component agrees on: the queue, Redis keys, MongoDB collections, metrics.

Keys that meet in one Lua script share the ``{mining}`` hash tag, so they land in one slot.
A user id inside a key name is percent-encoded (:func:`key_part`), so it never holds a ``:``
and no two (user, idempotency key) pairs can share a name.
"""

from __future__ import annotations

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


class Keys:
    """Redis key names. Every key the click path writes starts with the ``{mining}`` tag."""

    global_bucket = f"{KEY_TAG}:rl:global"
    # Clicks accepted and not yet applied (the `mining_click_queue_depth` source).
    queue_depth = f"{KEY_TAG}:queue:depth"
    # Job id -> clicks it carries; removing a job from it is what decrements the depth, once.
    queue_jobs = f"{KEY_TAG}:queue:jobs"
    # The job still waiting at the tail of the queue, which admission may add clicks to.
    open_job = f"{KEY_TAG}:queue:open"
    # Prefix of the click lists: one Redis list of click JSON per job.
    batch_prefix = f"{KEY_TAG}:batch:"
    # The worker pod that exports `mining_click_queue_depth` (one at a time, so sums are right).
    depth_reporter = f"{KEY_TAG}:queue:depth-reporter"
    # Where the sweep of marks left by killed workers goes on: the last balance _id it read.
    mark_sweep = f"{KEY_TAG}:ledger:sweep-after"

    @staticmethod
    def batch(job_id: str) -> str:
        """The clicks of one job, a list of JSON strings."""
        return f"{Keys.batch_prefix}{job_id}"

    @staticmethod
    def user_bucket(user_id: str) -> str:
        return f"{KEY_TAG}:rl:user:{key_part(user_id)}"

    @staticmethod
    def ip_bucket(ip: str) -> str:
        return f"{KEY_TAG}:rl:ip:{ip}"

    @staticmethod
    def api_bucket(ip: str) -> str:
        """The general limit of the /api/* routes for one client IP."""
        return f"{KEY_TAG}:rl:api:{ip}"

    @staticmethod
    def click(user_id: str, idempotency_key: str) -> str:
        """The idempotency record of one click, which is also its status (``records.py``)."""
        return f"{KEY_TAG}:click:{key_part(user_id)}:{idempotency_key}"

    @staticmethod
    def user_status(user_id: str) -> str:
        """Cached balance, click count and last click of one user."""
        return f"{KEY_TAG}:status:{key_part(user_id)}"

    @staticmethod
    def events(user_id: str) -> str:
        """The user's event stream: click outcomes and balance changes, in order."""
        return f"{KEY_TAG}:events:{key_part(user_id)}"

    @staticmethod
    def event_leases(user_id: str) -> str:
        """The user's open event streams (sorted set: connection -> lease expiry in ms)."""
        return f"{KEY_TAG}:events-open:{key_part(user_id)}"

    @staticmethod
    def signed_out(token_id: str) -> str:
        """Present while a token signed out by logout would still be valid."""
        return f"{KEY_TAG}:signed-out:{token_id}"

    @staticmethod
    def login_attempts(scope: str, subject: str) -> str:
        return f"{KEY_TAG}:login:{scope}:{subject}"

    @staticmethod
    def register_attempts(ip: str) -> str:
        return f"{KEY_TAG}:register:ip:{ip}"


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
