"""Idempotency keys: what a valid key is.

Records live in Redis (``lua/idempotency.lua``), scoped per user: while the click waits, for
``MINING_IDEMPOTENCY_TTL_SECONDS`` (default 24 h), and once it completed for
``MINING_IDEMPOTENCY_WINDOW_SECONDS``; after that MongoDB answers for it (``applied.py``), so a
repeat of an applied click is answered with its original outcome however late it comes. A
repeat is told from a reuse of the key with another body by the clicks it asks for (the
normalized body is ``{"clicks": n}``).
"""

from __future__ import annotations

from ..http.errors import ApiError

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
