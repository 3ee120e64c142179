"""Redis bytes per accepted click, by kind of key, once the clicks completed.

Measured on the server: ``used_memory`` before and after deleting each kind of key (the click
records, the users' event streams and cached status, the rate-limit buckets), so the keyspace's
and the allocator's overhead count too (``MEMORY USAGE`` leaves them out). The baseline is the
same records written as the scripts wrote them before the window: admission's fields
(fingerprint and job id included) and a 24 h TTL, then the outcome's, measured the same way on
the same keys.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from crypto_mine.common.names import KEY_TAG, Keys, Ttl


def _pattern(key: str) -> str:
    """A key name's prefix up to its user part, as a SCAN pattern (``u`` stands for the user)."""
    return key[: key.index(":u", len(KEY_TAG))] + ":*"


KINDS = {
    "click records": _pattern(Keys.click("u", "k")),
    "event streams": _pattern(Keys.events("u")),
    "cached status": _pattern(Keys.user_status("u")),
    "rate-limit buckets": f"{KEY_TAG}:rl:*",
}
CHUNK = 500


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def delete(client: redis.Redis, keys: list[bytes]) -> None:
    for start in range(0, len(keys), CHUNK):
        client.delete(*keys[start : start + CHUNK])


def records_as_before(client: redis.Redis, records: dict[bytes, dict[bytes, bytes]]) -> int:
    """Bytes the same records took as the scripts wrote them before the window: admission's
    fields (with the fingerprint and the job id) and a 24 h TTL, then the outcome's, ``d``
    included."""
    before = used(client)
    keys = list(records)
    for start in range(0, len(keys), CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for key in keys[start : start + CHUNK]:
                fields = records[key]
                admitted: dict[FieldT, EncodableT] = {
                    b"s": b"queued",
                    b"f": b"0123456789abcdef01234567",  # the 12-byte fingerprint, in hex
                    b"n": fields.get(b"n", b"1"),
                    b"j": b"0123456789abcdef0123456789abcdef",  # the job id
                    b"t": fields.get(b"t", b"0"),
                }
                completed: dict[FieldT, EncodableT] = {
                    b"s": b"completed",
                    b"r": fields.get(b"r", b"1"),
                    b"b": fields.get(b"b", b"0"),
                    b"a": fields.get(b"a", b"0"),
                    b"d": fields.get(b"d", b"0"),
                }
                pipe.hset(key, mapping=admitted)
                pipe.expire(key, Ttl.idempotency)
                pipe.hset(key, mapping=completed)
            pipe.execute()
    grown = used(client) - before
    delete(client, keys)
    return grown


def measure(client: redis.Redis) -> dict[str, Any]:
    """Deletes what it measures: run it when the clicks' keys are no longer needed. Every
    accepted request (one click each) left one record: per click = per record."""
    kinds: dict[str, dict[str, int]] = {}
    records: dict[bytes, dict[bytes, bytes]] = {}
    for kind, pattern in KINDS.items():
        keys = list(client.scan_iter(match=pattern, count=1000))
        if kind == "click records":
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                records = dict(zip(keys, pipe.execute(), strict=True))
        before = used(client)
        delete(client, keys)
        kinds[kind] = {"keys": len(keys), "bytes": before - used(client)}
    baseline = records_as_before(client, records) if records else 0
    count = max(len(records), 1)
    return {
        "clicks": len(records),
        "kinds": kinds,
        "record_bytes": round(kinds["click records"]["bytes"] / count, 1),
        "record_bytes_before": round(baseline / count, 1),
        "per_click": {kind: round(values["bytes"] / count, 1) for kind, values in kinds.items()},
    }
