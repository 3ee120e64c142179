"""Typed settings read from the environment.

Each service builds one frozen settings object at start-up with :class:`Env`; a bad or
missing value stops start-up with a :class:`SettingsError` naming the variable.

Some settings also answer to the name the original documents gave them (``alias=``, e.g.
``DB_POOL_SIZE`` for ``DB_MAX_POOL_SIZE``). The rule when both names are set: their values
must agree (compared after parsing, so ``10`` and ``010`` do); if they differ, start-up
stops, naming both. Never does one silently win over the other.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import urlsplit

from .names import Ttl

_T = TypeVar("_T", int, float)
_V = TypeVar("_V")
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
        alias: builtins.str | None = None,
    ) -> builtins.int:
        return self._number(name, default, builtins.int, "an integer", min, max, alias)

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
        alias: builtins.str | None = None,
    ) -> _T:
        def parse(variable: builtins.str, raw: builtins.str) -> _T:
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{variable} must be {what}, got {raw!r}.") from None
            if low is not None and value < low:
                raise SettingsError(f"{variable} must be at least {low}, got {raw!r}.")
            if high is not None and value > high:
                raise SettingsError(f"{variable} must be at most {high}, got {raw!r}.")
            return value

        value = self.either(name, alias, parse)
        return default if value is None else value

    def either(
        self,
        name: builtins.str,
        alias: builtins.str | None,
        parse: Callable[[builtins.str, builtins.str], _V],
    ) -> _V | None:
        """The parsed value of ``name`` or of its other name ``alias``; None when neither is set.

        Both set: the values must agree, else start-up stops naming both.
        """
        found: dict[builtins.str, tuple[builtins.str, _V]] = {}
        for variable in (name, alias):
            raw = self.environ.get(variable) if variable else None
            if variable and raw:
                found[variable] = (raw, parse(variable, raw))
        if name in found and alias in found and found[name][1] != found[alias][1]:
            raise SettingsError(
                f"{name}={found[name][0]!r} and {alias}={found[alias][0]!r} disagree: {alias} "
                f"is the original documents' name for {name}. Set only {name}."
            )
        for _, value in found.values():
            return value
        return None


# Kubernetes' service links give every pod of a namespace with a Service named ``redis``
# REDIS_PORT=tcp://<address>:<port>: that is no setting of ours, and it is not read.
_SERVICE_LINK = re.compile(r"tcp://[^/\s]+:\d+")
REDIS_DEFAULT_HOST = "127.0.0.1"
REDIS_DEFAULT_PORT = 6379


def redis_url(env: Env) -> str | None:
    """``REDIS_URL``, or the URL the original documents' ``REDIS_HOST``/``REDIS_PORT`` make.

    With both forms set, host and port must be those of ``REDIS_URL`` (which may carry more:
    a password, a database, TLS); otherwise start-up stops, naming the variables.
    """
    url = env.optional("REDIS_URL")
    host = env.optional("REDIS_HOST")
    port = None
    if not _SERVICE_LINK.fullmatch(env.optional("REDIS_PORT") or ""):
        port = env.int("REDIS_PORT", 0, min=1, max=65535) or None
    if host is None and port is None:
        return url
    if url is None:
        host = host or REDIS_DEFAULT_HOST
        netloc = f"[{host}]" if ":" in host else host  # an IPv6 address
        return f"redis://{netloc}:{port or REDIS_DEFAULT_PORT}/0"
    parts = urlsplit(url)
    named = {
        "REDIS_HOST": (host, parts.hostname),
        "REDIS_PORT": (port, parts.port or REDIS_DEFAULT_PORT),
    }
    for variable, (given, in_url) in named.items():
        if given is not None and str(given).lower() != str(in_url).lower():
            raise SettingsError(
                f"{variable}={given!s} disagrees with REDIS_URL ({in_url!s}): set REDIS_URL alone, "
                "or REDIS_HOST and REDIS_PORT alone."
            )
    return url


def shard_urls(env: Env, url: str | None) -> tuple[str, ...]:
    """``REDIS_SHARD_URLS``: the Redis of every click shard, shard 0 first (``names.shard_of``).

    Unset, there is one shard, at ``REDIS_URL``. Set, ``REDIS_URL`` may be left out (it is the
    first) or name the first; it may not name another server.
    """
    listed = tuple(u.strip() for u in (env.optional("REDIS_SHARD_URLS") or "").split(",") if u)
    if not listed:
        return ()
    for item in listed:
        if urlsplit(item).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(f"REDIS_SHARD_URLS holds {item!r}, not a redis:// URL.")
    if url is not None and url != listed[0]:
        raise SettingsError(
            "REDIS_URL names another server than the first of REDIS_SHARD_URLS (shard 0): "
            "leave REDIS_URL out, or make it the first."
        )
    return listed


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    # Bounded waits: a dead Redis must turn into a fast 503, never a hang.
    socket_timeout: float = 1.0
    connect_timeout: float = 0.5
    # Every click shard's Redis, shard 0 (``url``) first; () is one shard.
    shard_urls: tuple[str, ...] = ()

    @property
    def shards(self) -> int:
        return max(1, len(self.shard_urls))

    def shard(self, index: int) -> RedisSettings:
        """The settings of one shard's Redis."""
        if not 0 <= index < self.shards:
            raise SettingsError(
                f"MINING_SHARD={index} is not a shard: REDIS_SHARD_URLS names {self.shards}."
            )
        url = self.shard_urls[index] if self.shard_urls else self.url
        return replace(self, url=url, shard_urls=())

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        url = redis_url(env)
        shards = shard_urls(env, url)
        return cls(
            url=shards[0] if shards else url or cls.url,
            socket_timeout=env.float("REDIS_SOCKET_TIMEOUT", cls.socket_timeout, min=0.01),
            connect_timeout=env.float("REDIS_CONNECT_TIMEOUT", cls.connect_timeout, min=0.01),
            shard_urls=shards,
        )


READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")


def _queue_limit(env: Env) -> None:
    """``DB_QUEUE_LIMIT`` (the documents' bound on requests waiting for a pooled connection).

    The MongoDB driver has no such bound: operations wait for a connection, each bounded in
    time. 0 (the documents' default: no limit) is what it does; any other value stops start-up.
    """
    if env.int("DB_QUEUE_LIMIT", 0, min=0) != 0:
        raise SettingsError(
            "DB_QUEUE_LIMIT must be 0 (no limit): the MongoDB driver queues operations waiting "
            "for a pooled connection without a length bound. Bound the wait in time instead, "
            "with waitQueueTimeoutMS in MONGODB_URI (e.g. ...?waitQueueTimeoutMS=2000)."
        )


@dataclass(frozen=True)
class MongoSettings:
    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database: str = "crypto_mine"
    max_pool_size: int = 100
    min_pool_size: int = 10
    connect_timeout_ms: int = 10_000
    socket_timeout_ms: int = 45_000
    server_selection_timeout_ms: int = 5_000
    read_preference: str = "primaryPreferred"

    def __post_init__(self) -> None:
        if self.min_pool_size > self.max_pool_size:
            raise SettingsError(
                f"DB_MIN_POOL_SIZE ({self.min_pool_size}) must be at most DB_MAX_POOL_SIZE "
                f"({self.max_pool_size})."
            )

    @classmethod
    def from_env(cls, env: Env) -> MongoSettings:
        _queue_limit(env)
        max_pool_size = env.int("DB_MAX_POOL_SIZE", cls.max_pool_size, min=1, alias="DB_POOL_SIZE")
        return cls(
            uri=env.str("MONGODB_URI", cls.uri),
            database=env.str("MONGODB_DB", cls.database),
            max_pool_size=max_pool_size,
            # A small pool (the documents' DB_POOL_SIZE=10) keeps the minimum below it.
            min_pool_size=env.int("DB_MIN_POOL_SIZE", min(cls.min_pool_size, max_pool_size), min=0),
            connect_timeout_ms=env.int("DB_CONNECT_TIMEOUT", cls.connect_timeout_ms, min=1),
            socket_timeout_ms=env.int("DB_SOCKET_TIMEOUT", cls.socket_timeout_ms, min=1),
            server_selection_timeout_ms=env.int(
                "DB_SERVER_SELECTION_TIMEOUT", cls.server_selection_timeout_ms, min=1
            ),
            read_preference=env.choice("DB_READ_PREFERENCE", cls.read_preference, READ_PREFERENCES),
        )


def window_seconds(env: Env) -> int:
    """``MINING_IDEMPOTENCY_WINDOW_SECONDS``: how long Redis keeps a completed click's record
    (the api answers repeats and status reads from it; MongoDB after it). The worker writes it,
    the api restores records found in MongoDB for as long."""
    return env.int("MINING_IDEMPOTENCY_WINDOW_SECONDS", Ttl.window, min=1)
