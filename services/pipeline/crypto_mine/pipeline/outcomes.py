"""The Redis side of a batch: claiming its clicks, and writing its outcome in one script call
(click records, kept for the window from then on; status cache, depth, the users' event streams
of ``crypto_mine.pipeline.events``): ``lua/claim.lua`` and ``lua/complete.lua``.

Field names of the click record are those of ``crypto_mine.pipeline.records.Field``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis

from crypto_mine.common import scripts
from crypto_mine.common.names import Keys, ShardKeys, Ttl

from .events import EventSettings
from .ledger import Applied, QueuedClick


@dataclass(frozen=True, slots=True)
class Failure:
    click: QueuedClick
    error_code: str


def _decoded(item: bytes) -> Any:
    """A click's JSON; what is not JSON stays as it is, for the parser to reject."""
    try:
        return orjson.loads(item)
    except orjson.JSONDecodeError:
        return item


class OutcomeRecorder:
    """Records a batch's outcomes in Redis in one script call: click records, status cache,
    events, the depth counter; and claims a job's clicks before its run."""

    def __init__(
        self,
        redis: Redis,
        status_ttl: int,
        events: EventSettings | None = None,
        window_seconds: int = Ttl.window,
        keys: ShardKeys = Keys,
    ) -> None:
        self.keys = keys
        self.script = redis.register_script(scripts.load(__package__, "complete.lua"))
        self.claim_script = redis.register_script(scripts.load(__package__, "claim.lua"))
        self.status_ttl = status_ttl
        self.events = events or EventSettings()
        self.window = window_seconds

    def claim(self, job_id: str) -> list[Any]:
        """The job's clicks, decoded; from now on admission starts new jobs instead."""
        keys = self.keys
        raw = self.claim_script(keys=[keys.open_job, keys.batch(job_id)], args=[job_id])
        return [_decoded(item) for item in raw]

    def record(self, job_id: str, applied: Applied | None, failures: list[Failure]) -> int:
        """Write every outcome; return the clicks the depth counter lost (0 on a repeat)."""
        outcomes = applied.outcomes if applied else []
        users = applied.users if applied else []
        streams: dict[str, int] = {}

        def stream(user: str) -> int:
            return streams.setdefault(user, len(streams) + 1)

        names = self.keys
        keys = [names.queue_depth, names.queue_jobs, names.batch(job_id)]
        keys += [names.click(o.click.user, o.click.key) for o in outcomes]
        keys += [names.click(f.click.user, f.click.key) for f in failures]
        keys += [names.user_status(u.user) for u in users]
        args: list[Any] = [
            job_id,
            len(outcomes),
            len(failures),
            len(users),
            self.status_ttl,
            self.events.maxlen,
            self.events.ttl_seconds,
            self.window,
        ]
        for o in outcomes:
            args += [o.click.key, o.reward, o.balance, o.applied_ms, int(o.duplicate)]
            args.append(stream(o.click.user))
        for f in failures:
            args += [f.click.key, f.error_code, stream(f.click.user)]
        for u in users:
            args += [u.clicks, u.balance, u.last_click_ms, stream(u.user)]
        keys += [names.events(user) for user in streams]
        return int(self.script(keys=keys, args=args))
