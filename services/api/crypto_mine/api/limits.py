"""Rate-limit headers (``RateLimit-Policy`` and ``RateLimit``) for the binding token bucket.

The buckets themselves are checked and debited, all or none, by ``lua/limits.lua``.
"""

from __future__ import annotations

import math

from .admission import Admission
from .settings import Bucket


def policy(bucket: Bucket) -> str:
    window = max(1, math.ceil(bucket.burst / bucket.rate))
    return f'"{bucket.name}";q={bucket.burst};w={window}'


def policies(buckets: tuple[Bucket, ...]) -> str:
    """The ``RateLimit-Policy`` header: the same for every answer, so built once by its caller."""
    return ", ".join(policy(bucket) for bucket in buckets)


def headers(admission: Admission, policy_header: str) -> dict[str, str]:
    reset = max(0, math.ceil(admission.reset_ms / 1000))
    values = {
        "RateLimit-Policy": policy_header,
        "RateLimit": f'"{admission.policy.name}";r={max(0, admission.remaining)};t={reset}',
    }
    if admission.wait_ms:
        values["Retry-After"] = str(max(1, math.ceil(admission.wait_ms / 1000)))
    return values
