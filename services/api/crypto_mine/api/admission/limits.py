"""Rate-limit headers (``RateLimit-Policy`` and ``RateLimit``) for the binding token bucket.

The buckets themselves are checked and debited, all or none, by ``lua/limits.lua`` (a click's
three) and ``lua/api_limit.lua`` (the general limit of the /api/* routes).
"""

from __future__ import annotations

import math

from ..settings import Bucket
from .admission import Admission


def policy(bucket: Bucket) -> str:
    window = max(1, math.ceil(bucket.burst / bucket.rate))
    return f'"{bucket.name}";q={bucket.burst};w={window}'


def policies(buckets: tuple[Bucket, ...]) -> str:
    """The ``RateLimit-Policy`` header: the same for every answer, so built once by its caller."""
    return ", ".join(policy(bucket) for bucket in buckets)


def headers(admission: Admission, policy_header: str) -> dict[str, str]:
    return bucket_headers(
        admission.policy, admission.remaining, admission.reset_ms, admission.wait_ms, policy_header
    )


def bucket_headers(
    bucket: Bucket, remaining: int, reset_ms: int, wait_ms: int, policy_header: str
) -> dict[str, str]:
    """``RateLimit-Policy``, ``RateLimit`` of the binding ``bucket``, ``Retry-After`` if waiting."""
    reset = max(0, math.ceil(reset_ms / 1000))
    values = {
        "RateLimit-Policy": policy_header,
        "RateLimit": f'"{bucket.name}";r={max(0, remaining)};t={reset}',
    }
    if wait_ms:
        values["Retry-After"] = str(max(1, math.ceil(wait_ms / 1000)))
    return values
