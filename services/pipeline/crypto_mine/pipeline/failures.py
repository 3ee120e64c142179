"""Which failures are transient (retry, keep the job) and which are poison (dead-letter it).

Shared by the worker and by the api's inline mode (``USE_QUEUE=false``).
"""

from __future__ import annotations

from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, WTimeoutError
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

TRANSIENT = (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    WTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
)


class PoisonJob(Exception):
    """A job that can never succeed as it is; parked in the dead-letter registry."""

    def __init__(self, error_code: str, detail: str, clicks: int = 0) -> None:
        super().__init__(f"{error_code}: {detail}")
        self.error_code = error_code
        self.clicks = clicks  # clicks of the job, recorded as failed


class TransientFailure(Exception):
    """A dependency stayed away for the whole retry budget; the job goes back to the queue."""

    def __init__(self, error_code: str, cause: BaseException) -> None:
        super().__init__(f"{error_code}: {cause}")
        self.error_code = error_code


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


def error_code(error: BaseException) -> str:
    """A short, stable label for metrics and click statuses."""
    if isinstance(error, PoisonJob | TransientFailure):
        return error.error_code
    module = type(error).__module__
    if isinstance(error, TRANSIENT):
        return "mongodb_unavailable" if module.startswith("pymongo") else "redis_unavailable"
    if module.startswith("pymongo"):
        return "mongodb_error"
    return "internal_error"
