"""Exponential backoff with jitter, for calls to dependencies that may be briefly away."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Waits of ``base * 2**n``, capped at ``cap``, each scaled by a random factor in [0.5, 1.5)."""

    base: float = 0.1
    cap: float = 5.0

    def delays(self) -> Iterator[float]:
        attempt = 0
        while True:
            yield min(self.cap, self.base * 2**attempt) * (0.5 + random.random())
            attempt += 1


def retrying(
    call: Callable[[], T],
    transient: Callable[[BaseException], bool],
    backoff: Backoff,
    budget: float,
    what: str,
) -> T:
    """``call()``, retried while it fails with a transient error and ``budget`` seconds remain.

    The last error is raised once the budget is spent; other errors are raised at once.
    """
    deadline = time.monotonic() + budget
    for delay in backoff.delays():
        try:
            return call()
        except Exception as error:
            if not transient(error) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed (%s); retrying in %.2fs", what, type(error).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
