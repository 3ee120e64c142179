"""The click record: idempotency entry and status of one click, a small Redis hash.

The api's admission script creates it (state ``queued``); the worker completes or fails it.
Field names are short because there is one record per accepted click for a whole TTL.
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
    fingerprint = "f"
    clicks = "n"
    job = "j"
    accepted_ms = "t"
    reward = "r"
    balance = "b"
    applied_ms = "a"
    duplicate = "d"
    error = "e"


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


def completed_fields(reward: int, balance: int, applied_ms: int, duplicate: bool) -> dict[str, str]:
    return {
        Field.state: COMPLETED,
        Field.reward: str(reward),
        Field.balance: str(balance),
        Field.applied_ms: str(applied_ms),
        Field.duplicate: "1" if duplicate else "0",
    }


def failed_fields(error_code: str) -> dict[str, str]:
    return {Field.state: FAILED, Field.error: error_code}
