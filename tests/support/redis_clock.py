"""A clock the test sets, for the api's admission script: the time the buckets see.

The admission script reads the Redis server's clock (``lua/clock.lua``, one of its includes);
tests that need to say "500 ms later" exactly swap that one part for a read of
:data:`CLOCK_KEY`, which the test sets. Every other part of the script is the one the api runs.
"""

from __future__ import annotations

from importlib import resources

import pytest
import redis

from crypto_mine.api import SCRIPTS
from crypto_mine.api.admission import admission
from crypto_mine.common import scripts

CLOCK_KEY = "test:clock:ms"
TEST_CLOCK = f"local now_ms = tonumber(redis.call('GET', '{CLOCK_KEY}'))\n"


def with_test_clock(script: str) -> str:
    real = (resources.files(SCRIPTS) / "lua" / "clock.lua").read_text()
    assert script.count(real) == 1, "the admission script no longer holds clock.lua as it is"
    return script.replace(real, TEST_CLOCK)


class RedisClock:
    """Milliseconds the admission script takes for "now"."""

    def __init__(self, client: redis.Redis, start_ms: int = 1_700_000_000_000) -> None:
        self.client = client
        self.now_ms = start_ms
        self.client.set(CLOCK_KEY, self.now_ms)

    def advance(self, ms: int) -> None:
        self.set(self.now_ms + ms)

    def set(self, ms: int) -> None:
        self.now_ms = ms
        self.client.set(CLOCK_KEY, ms)


def install_test_clock(monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> RedisClock:
    """Apps created from now on in this test admit clicks on a :class:`RedisClock`."""
    real = scripts.load

    def load(package: str | None, name: str) -> str:
        script = real(package, name)
        admitting = (package, name) == (SCRIPTS, admission.SCRIPT)
        return with_test_clock(script) if admitting else script

    monkeypatch.setattr(scripts, "load", load)
    return RedisClock(client)
