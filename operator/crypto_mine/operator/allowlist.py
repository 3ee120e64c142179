"""Which metric URLs a QueueAutoscaler may make the operator connect to.

A QueueAutoscaler's author chooses ``metric.prometheusUrl`` and ``metric.redisUrl``; without a
check, anyone who may create one could make the operator fetch any address it can reach. Only
the operator's own ``PROMETHEUS_URL`` and ``REDIS_URL`` and the entries of
``METRIC_URL_ALLOWLIST`` are accepted. An entry matches a URL with the same scheme, host and
port whose path starts with the entry's path at a ``/`` boundary; credentials, queries and
fragments are never part of the match, and a path with dot segments or escapes never matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}


class AllowListError(ValueError):
    """An entry of the allow-list is not a URL the operator could match."""


@dataclass(frozen=True)
class Origin:
    """One allowed place: scheme, host, port and a path prefix ("" for any path)."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, entry: str, *, credentials: bool = False) -> Origin:
        """An entry of the list; ``credentials`` allows (and ignores) a user and password."""
        parts = _split(entry)
        if parts is None or parts.query or parts.fragment:
            raise AllowListError(
                f"{entry!r} is not a URL of scheme http, https, redis or rediss without "
                "query or fragment"
            )
        if parts.username is not None and not credentials:
            raise AllowListError(f"{entry!r} holds credentials: list places, not secrets")
        return cls(
            parts.scheme,
            str(parts.hostname),
            _port(parts),
            parts.path.rstrip("/"),
        )

    def admits(self, parts: SplitResult) -> bool:
        if (parts.scheme, parts.hostname, _port(parts)) != (self.scheme, self.host, self.port):
            return False
        path = parts.path.rstrip("/")
        return path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True)
class AllowList:
    origins: tuple[Origin, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str], own: Iterable[str | None] = ()) -> AllowList:
        """The ``entries`` of the list, plus the operator's ``own`` URLs where they parse."""
        origins = [Origin.parse(e) for e in entries if e]
        for url in own:
            try:
                origins.append(Origin.parse(url or "", credentials=True))
            except AllowListError:
                continue
        return cls(tuple(origins))

    def admits(self, url: str) -> bool:
        parts = _split(url)
        if parts is None or parts.query or parts.fragment or not _plain_path(parts.path):
            return False
        return any(origin.admits(parts) for origin in self.origins)


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if any(c.isspace() or c == "\\" for c in url):
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]


def _plain_path(path: str) -> bool:
    """No escapes and no ``.`` or ``..`` segment: what is matched is what is requested."""
    return "%" not in path and not any(s in {".", ".."} for s in path.split("/"))
