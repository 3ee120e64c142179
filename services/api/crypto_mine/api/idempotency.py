"""Idempotency keys: what a valid key is, and the fingerprint that tells a repeat from a reuse.

Records live in Redis for ``MINING_IDEMPOTENCY_TTL_SECONDS`` (default 24 h), scoped per user;
the Lua step is ``lua/idempotency.lua``. After the TTL a key is new again for the api, and the
worker's unique index on (user, key) still refuses to apply the click twice.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from .errors import ApiError

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def parse_key(raw: str | None, source: str = f"The {HEADER} header") -> str:
    if raw is None or raw == "":
        raise ApiError(400, "idempotency_key_missing", f"{source} is required.")
    if len(raw) > MAX_LENGTH:
        raise ApiError(
            400, "idempotency_key_invalid", f"{source} must be at most {MAX_LENGTH} characters."
        )
    if not (raw.isascii() and raw.isprintable()):  # " " to "~"
        raise ApiError(
            400, "idempotency_key_invalid", f"{source} must be printable ASCII characters."
        )
    return raw


def fingerprint(body: dict[str, Any]) -> str:
    """A short digest of the normalized body: equal bodies, equal fingerprints."""
    return _digest(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


@functools.lru_cache(maxsize=1024)
def _digest(canonical: bytes) -> str:
    # Normalized click bodies are few ({"clicks": n}): most digests come from this cache.
    return hashlib.blake2b(canonical, digest_size=12).hexdigest()
