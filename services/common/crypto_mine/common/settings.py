"""Typed settings read from the environment.

Each service builds one frozen settings object at start-up with :class:`Env`; a bad or
missing value stops start-up with a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from .names import Ttl

_T = TypeVar("_T", int, float)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A variable of the environment is missing or malformed."""


class Env:
    """Reads typed values from an environment mapping (``os.environ`` unless given)."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self.environ.get(name)
        if value is None or value == "":
            if default is None:
                raise SettingsError(f"{name} is missing, and has no default.")
            return default
        return value

    def optional(self, name: builtins.str) -> builtins.str | None:
        return self.environ.get(name) or None

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> builtins.int:
        return self._number(name, default, builtins.int, "an integer", min, max)

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        *,
        min: builtins.float | None = None,
        max: builtins.float | None = None,
    ) -> builtins.float:
        return self._number(name, default, builtins.float, "a number", min, max)

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}.")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.str(name, default)
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        return value

    def _number(
        self,
        name: builtins.str,
        default: _T,
        kind: type[_T],
        what: builtins.str,
        low: _T | None,
        high: _T | None,
    ) -> _T:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {what}, got {raw!r}.") from None
        if low is not None and value < low:
            raise SettingsError(f"{name} must be at least {low}, got {raw!r}.")
        if high is not None and value > high:
            raise SettingsError(f"{name} must be at most {high}, got {raw!r}.")
        return value


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    # Bounded waits: a dead Redis must turn into a fast 503, never a hang.
    socket_timeout: float = 1.0
    connect_timeout: float = 0.5

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        return cls(
            url=env.str("REDIS_URL", cls.url),
            socket_timeout=env.float("REDIS_SOCKET_TIMEOUT", cls.socket_timeout, min=0.01),
            connect_timeout=env.float("REDIS_CONNECT_TIMEOUT", cls.connect_timeout, min=0.01),
        )


@dataclass(frozen=True)
class MongoSettings:
    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database: str = "crypto_mine"
    max_pool_size: int = 100
    min_pool_size: int = 0
    connect_timeout_ms: int = 10_000
    socket_timeout_ms: int = 45_000
    server_selection_timeout_ms: int = 5_000

    @classmethod
    def from_env(cls, env: Env) -> MongoSettings:
        return cls(
            uri=env.str("MONGODB_URI", cls.uri),
            database=env.str("MONGODB_DB", cls.database),
            max_pool_size=env.int("DB_MAX_POOL_SIZE", cls.max_pool_size, min=1),
            min_pool_size=env.int("DB_MIN_POOL_SIZE", cls.min_pool_size, min=0),
            connect_timeout_ms=env.int("DB_CONNECT_TIMEOUT", cls.connect_timeout_ms, min=1),
            socket_timeout_ms=env.int("DB_SOCKET_TIMEOUT", cls.socket_timeout_ms, min=1),
            server_selection_timeout_ms=env.int(
                "DB_SERVER_SELECTION_TIMEOUT", cls.server_selection_timeout_ms, min=1
            ),
        )


def window_seconds(env: Env) -> int:
    """``MINING_IDEMPOTENCY_WINDOW_SECONDS``: how long Redis keeps a completed click's record
    (the api answers repeats and status reads from it; MongoDB after it). The worker writes it,
    the api restores records found in MongoDB for as long."""
    return env.int("MINING_IDEMPOTENCY_WINDOW_SECONDS", Ttl.window, min=1)
