"""Writing a batch's outcome to Redis in one script call: click records, status cache, depth.

Field names of the click record are those of ``crypto_mine.common.records.Field``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis import Redis

from crypto_mine.common.names import Keys
from crypto_mine.common.status_cache import WRITE_STATUS_LUA

from .ledger import Applied, Click


@dataclass(frozen=True, slots=True)
class Failure:
    click: Click
    error_code: str


def load_script() -> str:
    return WRITE_STATUS_LUA + (resources.files(__package__) / "lua" / "complete.lua").read_text()


class Outcomes:
    def __init__(self, redis: Redis, status_ttl: int) -> None:
        self.script = redis.register_script(load_script())
        self.status_ttl = status_ttl

    def record(self, job_id: str, applied: Applied | None, failures: list[Failure]) -> int:
        """Write every outcome; return the clicks the depth counter lost (0 on a repeat)."""
        outcomes = applied.outcomes if applied else []
        users = applied.users if applied else []
        applied_ms = int(time.time() * 1000)
        keys = [Keys.queue_depth, Keys.queue_jobs]
        keys += [Keys.click(o.click.user, o.click.key) for o in outcomes]
        keys += [Keys.click(f.click.user, f.click.key) for f in failures]
        keys += [Keys.user_status(u.user) for u in users]
        args: list[Any] = [job_id, len(outcomes), len(failures), len(users), self.status_ttl]
        for o in outcomes:
            args += [o.reward, o.balance, applied_ms, int(o.duplicate)]
        args += [f.error_code for f in failures]
        for u in users:
            args += [u.clicks, u.balance, u.last_click_ms]
        return int(self.script(keys=keys, args=args))
