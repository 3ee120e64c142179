"""Client of the id-allocator service (``POST /v1/ids``), for the services that need user ids."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from .settings import Env

log = logging.getLogger(__name__)

MAX_COUNT = 10_000


class AllocatorError(Exception):
    """The id-allocator answered something this client cannot use."""


class AllocatorUnavailable(AllocatorError):
    """The id-allocator could not be reached, timed out, or answered 5xx; retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class AllocatorClientSettings:
    url: str = "http://127.0.0.1:8081"
    timeout: float = 5.0
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Env) -> AllocatorClientSettings:
        return cls(
            url=env.str("ID_ALLOCATOR_URL", cls.url),
            timeout=env.float("ID_ALLOCATOR_TIMEOUT", cls.timeout, min=0.01),
            token=env.optional("ID_ALLOCATOR_TOKEN"),
        )


class IdAllocatorClient:
    """Gets unique user ids from the id-allocator; every call is bounded by ``timeout`` seconds.

    One instance holds one connection pool: create it at start-up, ``aclose()`` it at shutdown.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"} if token else None,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: AllocatorClientSettings) -> IdAllocatorClient:
        return cls(settings.url, settings.timeout, token=settings.token)

    async def allocate(self, count: int = 1) -> list[int]:
        """``count`` new unique ids (1 to 10 000)."""
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be from 1 to {MAX_COUNT}, got {count}")
        try:
            response = await self._http.post("/v1/ids", params={"count": count})
        except httpx.TimeoutException as exc:
            raise AllocatorUnavailable(f"id-allocator at {self.base_url} timed out") from exc
        except httpx.TransportError as exc:
            raise AllocatorUnavailable(
                f"id-allocator at {self.base_url} unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 500:
            raise AllocatorUnavailable(
                f"id-allocator at {self.base_url} answered {response.status_code}: "
                f"{response.text[:200]}",
                _retry_after(response),
            )
        if response.status_code != 200:
            raise AllocatorError(
                f"id-allocator at {self.base_url} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        return _ids(response, count)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> IdAllocatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _ids(response: httpx.Response, count: int) -> list[int]:
    try:
        ids = response.json()["ids"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AllocatorError(
            f"id-allocator answered a malformed body: {response.text[:200]}"
        ) from exc
    if (
        not isinstance(ids, list)
        or len(ids) != count
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise AllocatorError(f"id-allocator answered {len(ids)!r} ids for {count}, or not ints")
    return ids
