"""The click record: idempotency entry and status of one click, a small Redis hash.

The api's admission script creates it (state ``queued``: clicks, accepted time, job), kept
``MINING_IDEMPOTENCY_TTL_SECONDS`` while the click waits; the worker completes it (reward,
balance, applied time; ``d`` only for a duplicate; the job id goes) and keeps it for the window,
``MINING_IDEMPOTENCY_WINDOW_SECONDS``, or fails it (error code, the TTL kept). After the window
MongoDB answers for a completed click (``applied.py``), with the same record.

Field names are short and no field is stored that can be derived: there is one record per
click accepted within the window. A repeat is told from a reuse of the key by its clicks (the
whole normalized body, ``{"clicks": n}``), which MongoDB keeps too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

QUEUED = "queued"
COMPLETED = "completed"
FAILED = "failed"


class Field:
    state = "s"
    clicks = "n"
    job = "j"
    accepted_ms = "t"
    reward = "r"
    balance = "b"
    applied_ms = "a"
    duplicate = "d"
    error = "e"


# Fields older versions wrote (``f``: the request's fingerprint), dropped from a record when
# it completes (``lua/complete.lua``); nothing reads them.
RETIRED_FIELDS = ("f",)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class ClickRecord:
    key: str
    state: str
    clicks: int
    accepted_ms: int
    reward: int | None = None
    balance: int | None = None
    applied_ms: int | None = None
    duplicate: bool = False
    error: str | None = None

    @classmethod
    def from_hash(cls, key: str, raw: dict[str, str]) -> ClickRecord:
        def number(field: str) -> int | None:
            value = raw.get(field)
            return int(value) if value not in (None, "") else None

        return cls(
            key=key,
            state=raw.get(Field.state, QUEUED),
            clicks=number(Field.clicks) or 0,
            accepted_ms=number(Field.accepted_ms) or 0,
            reward=number(Field.reward),
            balance=number(Field.balance),
            applied_ms=number(Field.applied_ms),
            duplicate=raw.get(Field.duplicate) == "1",
            error=raw.get(Field.error) or None,
        )

    def fields(self) -> list[str]:
        """Field/value pairs of a completed record, as the worker writes them."""
        assert self.state == COMPLETED, self.state
        pairs = [Field.state, COMPLETED, Field.clicks, str(self.clicks)]
        pairs += [Field.accepted_ms, str(self.accepted_ms)]
        for field, value in (
            (Field.reward, self.reward),
            (Field.balance, self.balance),
            (Field.applied_ms, self.applied_ms),
        ):
            if value is not None:
                pairs += [field, str(value)]
        if self.duplicate:
            pairs += [Field.duplicate, "1"]
        return pairs

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "idempotencyKey": self.key,
            "status": self.state,
            "clicks": self.clicks,
            "acceptedAt": iso_ms(self.accepted_ms) if self.accepted_ms else None,
        }
        if self.state == COMPLETED:
            body["result"] = {
                "reward": self.reward,
                "balance": self.balance,
                "appliedAt": iso_ms(self.applied_ms) if self.applied_ms else None,
                "duplicate": self.duplicate,
            }
        if self.state == FAILED:
            body["error"] = {"code": self.error or "unknown"}
        return body
