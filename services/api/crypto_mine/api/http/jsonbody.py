"""Request bodies as JSON: one object per key, errors that name the position, not the parser.

orjson parses every body; it keeps the last of repeated keys, which lets two readers of one
body (a proxy, a log, this api) disagree about it. Repeats are refused with ``400``. Proving
there are none costs nothing for the usual flat object of numbers (each ``"`` pair is then a
distinct key); anything else is parsed a second time by the standard library to find them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .errors import ApiError

JSON_TYPE = "application/json"


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def _may_repeat_keys(raw: bytes, value: Any) -> bool:
    if b"{" not in raw:
        return False  # no object anywhere
    return not (isinstance(value, dict) and raw.count(b'"') == 2 * len(value))


def parse(raw: bytes) -> Any:
    """The JSON value of ``raw``; ``400`` when it is not JSON or an object repeats a key."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400,
            "invalid_json",
            f"The body is not valid JSON (line {error.lineno}, column {error.colno}).",
        ) from None
    if _may_repeat_keys(raw, value):
        try:
            json.loads(raw, object_pairs_hook=_unique)
        except DuplicateKey as error:
            raise ApiError(
                400, "duplicate_key", f"The body repeats the key {error.key[:40]!r}."
            ) from None
    return value


def require_json(content_type: str | None) -> None:
    """``415`` unless the request says its body is JSON (an HTML form cannot say that)."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != JSON_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The body must be sent as {JSON_TYPE} (Content-Type).",
        )
