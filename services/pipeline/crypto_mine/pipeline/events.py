"""Per-user event streams: the click outcomes and balance changes a user's clients follow live.

The outcome writer (``lua/complete.lua``) appends to the user's Redis Stream in the same script
call that records the outcomes, so an event exists exactly when its outcome was first recorded.
An entry is one of:

- a click: ``ev=click``, ``k`` = idempotency key, then the click record's own fields
  (:class:`crypto_mine.pipeline.records.Field`): state, clicks, accepted, reward, balance, ...;
- a balance: ``ev=balance``, then the status cache's fields ``clicks``, ``balance``, ``last``;
- a sign-out: ``ev=signout``, ``tok`` = the id of the token signed out (the api's logout): the
  streams opened with that token end; it is never sent to clients.

Streams are trimmed to about ``MINING_EVENTS_MAXLEN`` entries and expire
``MINING_EVENTS_TTL`` seconds after their last entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from crypto_mine.common.settings import Env

from .records import ClickRecord
from .status_cache import UserStatus

CLICK = "click"
BALANCE = "balance"
SIGNOUT = "signout"
TYPE_FIELD = "ev"
KEY_FIELD = "k"
SESSION_FIELD = "tok"

STREAM_ID = re.compile(r"(\d{1,20})-(\d{1,20})")


@dataclass(frozen=True)
class EventSettings:
    maxlen: int = 1000
    # Long enough to resume after a reconnect; short, because every active user's stream costs
    # Redis ~4 KB at least (a stream's first node is allocated whole) plus its events.
    ttl_seconds: int = 300

    @classmethod
    def from_env(cls, env: Env) -> EventSettings:
        return cls(
            maxlen=env.int("MINING_EVENTS_MAXLEN", cls.maxlen, min=10),
            ttl_seconds=env.int("MINING_EVENTS_TTL", cls.ttl_seconds, min=60),
        )


def parse_id(raw: str | None) -> tuple[int, int] | None:
    """A stream entry id ``<ms>-<seq>`` as a comparable pair, or None when malformed."""
    if raw is None:
        return None
    match = STREAM_ID.fullmatch(raw.strip())
    return (int(match[1]), int(match[2])) if match else None


def payload(user_id: str, fields: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """The event name and JSON body of one stream entry (None for an unknown kind)."""
    kind = fields.get(TYPE_FIELD)
    if kind == CLICK:
        return CLICK, ClickRecord.from_hash(fields.get(KEY_FIELD, ""), fields).to_json()
    if kind == BALANCE:
        return BALANCE, UserStatus.from_hash(user_id, fields).to_json()
    return None
