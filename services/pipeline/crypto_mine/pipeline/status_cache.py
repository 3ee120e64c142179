"""The per-user status cache in Redis: balance, click count and last click.

Writers (the worker after applying clicks, the api after a MongoDB read on a miss) go through
one script that never replaces a newer entry with an older one: the click count only grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto_mine.common import scripts

from .ledger import last_click_ms
from .records import iso_ms

# Written through one script (``lua/status_cache.lua``, its function ``lua/write_status.lua``
# also part of the outcome script): a newer status is never replaced by an older one.
WRITE_SCRIPT = scripts.load(__package__, "status_cache.lua")


@dataclass(frozen=True, slots=True)
class UserStatus:
    user_id: str
    balance: int
    clicks: int
    last_click_ms: int  # 0 when the user never clicked

    @classmethod
    def from_hash(cls, user_id: str, raw: dict[str, str]) -> UserStatus:
        return cls(user_id, int(raw["balance"]), int(raw["clicks"]), int(raw.get("last") or 0))

    @classmethod
    def from_document(cls, user_id: str, doc: dict[str, Any] | None) -> UserStatus:
        if not doc:
            return cls(user_id, 0, 0, 0)
        balance, clicks = int(doc.get("balance", 0)), int(doc.get("clicks", 0))
        return cls(user_id, balance, clicks, last_click_ms(doc))

    def script_args(self, ttl: int) -> list[int]:
        return [self.clicks, self.balance, self.last_click_ms, ttl]

    def to_json(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "balance": self.balance,
            "clicks": self.clicks,
            "lastClickAt": iso_ms(self.last_click_ms) if self.last_click_ms else None,
        }
