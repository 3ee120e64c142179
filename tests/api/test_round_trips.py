"""The hot path's budget: one Redis round trip for an accepted click (and one MongoDB read per
admission call, for keys beyond the Redis window: ``test_applied.py``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from tests.support.api import Api

pytestmark = pytest.mark.anyio


class Monitor:
    """Top-level commands the server received (Lua's own calls are marked and skipped)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.seen: list[tuple[str, str]] = []  # (client address, command)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                if entry["client_type"] == "lua":
                    continue
                address = f"{entry['client_address']}:{entry['client_port']}"
                if entry["command"] == "ECHO stop-monitor":
                    # Drop what our own stopping connection sent.
                    self.seen = [(a, c) for a, c in self.seen if a != address]
                    return
                self.seen.append((address, entry["command"]))

    @property
    def commands(self) -> list[str]:
        return [command.split()[0].upper() for _, command in self.seen]

    def __enter__(self) -> Monitor:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *_: Any) -> None:
        self.client.echo("stop-monitor")
        self.thread.join(5)
        self.client.close()


async def test_one_accepted_click_is_one_round_trip(
    api: Api, redis_client: redis.Redis, redis_server: Any
) -> None:
    assert (await api.click("warm", "up")).status_code == 202  # loads the script once
    with Monitor(redis_server.url) as monitor:
        response = await api.click("u1", "k1")
    assert response.status_code == 202
    assert monitor.commands == ["EVALSHA"], monitor.seen
