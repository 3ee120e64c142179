"""Sign-up and login attempt limits, counted in Redis before any work, failing closed (``503``).

Sign-up: ``REGISTER_MAX_ATTEMPTS`` per ``REGISTER_WINDOW_SECONDS`` per client IP, whatever the
outcome, so a flood cannot burn argon2 time or user ids, nor probe many usernames for ``409``.

Login (ASVS 2.2.1: no one can lock an account's owner out by guessing). Three counters,
checked and counted together in one script *before* the password is verified, so parallel
guesses cannot slip past them:

- per (username, client IP), hard: ``LOGIN_MAX_ATTEMPTS`` failed logins per
  ``LOGIN_WINDOW_SECONDS``, then ``429`` for that client and that username only. A success
  clears it.
- per client IP, hard: ``LOGIN_IP_MAX_ATTEMPTS`` logins per window *whatever their outcome*, so
  one client cannot spray guesses over many usernames, nor keep argon2 busy by signing in to
  its own account again and again.
- per username from anywhere, soft: after ``LOGIN_MAX_ATTEMPTS`` failures, each further attempt
  must come at least a delay after the one before it (1 s, doubling with each failure, at most
  ``LOGIN_DELAY_MAX_SECONDS``), else ``429`` with that ``Retry-After``: guesses spread over
  many addresses slow down to one per delay. A client that signed in to this account before
  (its device cookie, ``devices.py``) is never delayed, so the owner keeps signing in whatever
  strangers try. A success clears it. The counter lives ``LOGIN_WINDOW_SECONDS`` after the last
  attempt, so a slow, steady guesser stays slowed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from crypto_mine.common import scripts
from crypto_mine.common.names import Keys

from .. import SCRIPTS
from ..http.errors import ApiError

log = logging.getLogger(__name__)

BASE_DELAY_MS = 1000

LOGIN_SCOPES = ("ip", "username_ip", "username")
WHAT = {
    "ip": "client address",
    "username_ip": "username from this client address",
    "username": "username",
}


@dataclass(frozen=True)
class AttemptLimits:
    login_max_failures: int
    login_ip_max_attempts: int
    login_window_seconds: int
    login_max_delay_seconds: int
    register_max_attempts: int
    register_window_seconds: int


def too_many(what: str, scope: str, wait_ms: int) -> ApiError:
    retry_after = max(1, math.ceil(wait_ms / 1000))
    return ApiError(
        429,
        "too_many_attempts",
        f"Too many {what} attempts for this {WHAT[scope]}; retry after {retry_after} s.",
        {"Retry-After": str(retry_after)},
        limit=scope,
    )


class AttemptLimiter:
    def __init__(self, redis: Redis, limits: AttemptLimits) -> None:
        self.limits = limits
        self.count = redis.register_script(scripts.load(SCRIPTS, "attempt_count.lua"))
        self.login = redis.register_script(scripts.load(SCRIPTS, "attempt_login.lua"))
        self.forgive = redis.register_script(scripts.load(SCRIPTS, "attempt_forgive.lua"))

    @staticmethod
    def login_keys(username_key: str, ip: str) -> list[str]:
        return [
            Keys.login_attempts("ip", ip),
            Keys.login_attempts("username-ip", f"{username_key}:{ip}"),
            Keys.login_attempts("username", username_key),
        ]

    async def sign_up(self, ip: str) -> None:
        """Count one sign-up, or raise ``429``."""
        limits = self.limits
        blocked, wait_ms = await self.count(
            keys=[Keys.register_attempts(ip)],
            args=[limits.register_max_attempts, limits.register_window_seconds * 1000],
        )
        if int(blocked):
            raise too_many("sign-up", "ip", int(wait_ms))

    async def log_in(self, username_key: str, ip: str, trusted_device: bool) -> None:
        """Count one login attempt, or raise ``429`` naming the limit that holds it back."""
        limits = self.limits
        blocked, wait_ms = await self.login(
            keys=self.login_keys(username_key, ip),
            args=[
                limits.login_ip_max_attempts,
                limits.login_max_failures,
                limits.login_max_failures,
                limits.login_window_seconds * 1000,
                int(trusted_device),
                BASE_DELAY_MS,
                limits.login_max_delay_seconds * 1000,
            ],
        )
        if int(blocked):
            raise too_many("login", LOGIN_SCOPES[int(blocked) - 1], int(wait_ms))

    async def logged_in(self, username_key: str, ip: str) -> None:
        """The password was right: its username's failures are forgiven (not the client's)."""
        try:
            await self.forgive(keys=self.login_keys(username_key, ip)[1:])
        except RedisError as error:  # the failures stay counted until the window ends
            log.warning("login counters not reset: %s", error)
