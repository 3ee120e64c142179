"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go's leaderelection does.

Every replica is a candidate. The holder renews the Lease every ``retry_period`` seconds and
stops acting (``leading()`` turns false) when it has not renewed for ``renew_deadline``. A
candidate takes the Lease only once its record has not changed for ``duration`` seconds *by the
candidate's own clock* (no clock comparison between machines), or at once when it is released.
Every write carries the ``resourceVersion`` read before it, so of two candidates racing for the
same Lease one wins and the other gets a conflict. ``duration`` > ``renew_deadline`` leaves a
gap in which nobody acts rather than two.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .kube_client import ApiError, KubeClient, resource_path

log = logging.getLogger(__name__)

# (connect, read) seconds of one Lease call: well inside the renew deadline.
REQUEST_TIMEOUT = (2.0, 4.0)


@dataclass(frozen=True)
class Election:
    """Which Lease, who we are, and client-go's timings (defaults 15 / 10 / 2 s)."""

    namespace: str
    name: str
    identity: str
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs LEASE_DURATION > LEASE_RENEW_DEADLINE > "
                f"LEASE_RETRY_PERIOD > 0, got {self.duration:g} / {self.renew_deadline:g} / "
                f"{self.retry_period:g}"
            )


@dataclass(frozen=True)
class Record:
    """What the Lease says; equality is what tells a candidate that the holder is alive."""

    holder: str
    duration: int
    acquired: str | None  # MicroTime, as the API server wrote it
    renewed: str | None
    transitions: int


class LeaderElector:
    def __init__(
        self,
        election: Election,
        client: KubeClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.election = election
        self.client = client
        self.clock = clock
        self.observed: Record | None = None
        self.observed_at = 0.0
        self.renewed_at: float | None = None
        self.contacted_at = clock()

    def leading(self) -> bool:
        """True while our last renewal is younger than the renew deadline."""
        return (
            self.renewed_at is not None
            and self.clock() - self.renewed_at < self.election.renew_deadline
        )

    def contacted_recently(self) -> bool:
        """The API server answered within a few lease durations (the standby's liveness)."""
        return self.clock() - self.contacted_at < max(60.0, 3 * self.election.duration)

    @property
    def holder(self) -> str | None:
        return self.observed.holder if self.observed else None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every ``retry_period`` until we lead (True) or ``stop`` is set (False)."""
        announced: str | None = None
        while not stop.is_set():
            if await self.try_acquire_or_renew():
                log.info("leading: Lease %s", self._where())
                return True
            if self.holder != announced:
                announced = self.holder
                log.info("standing by: Lease %s held by %s", self._where(), announced)
            await _wait(stop, self.election.retry_period)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until ``stop`` is set, or return once the renew deadline has passed."""
        while not stop.is_set():
            await self.try_acquire_or_renew()
            if not self.leading():
                log.error(
                    "lost the Lease %s: not renewed for %ss", self._where(),
                    f"{self.election.renew_deadline:g}",
                )  # fmt: skip
                return
            await _wait(stop, self.election.retry_period)

    async def try_acquire_or_renew(self) -> bool:
        election = self.election
        now = self.clock()
        try:
            lease = await self._call("GET", self._path(election.name))
        except ApiError as error:
            if error.status != 404:
                log.warning("reading the Lease %s: HTTP %s", self._where(), error.status)
                return False
            return await self._create(now)
        except OSError as error:
            log.warning("reading the Lease %s: %r", self._where(), error)
            return False
        self.contacted_at = self.clock()
        spec = lease["spec"] = lease.get("spec") or {}
        record = _record(spec)
        if record != self.observed:
            self.observed, self.observed_at = record, now
        ours = record.holder == election.identity
        expiry = record.duration or election.duration
        if record.holder and not ours and now < self.observed_at + expiry:
            return False
        stamp = _now()
        spec["holderIdentity"] = election.identity
        spec["leaseDurationSeconds"] = int(election.duration)
        spec["renewTime"] = stamp
        if not ours:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = record.transitions + 1
        # The body carries the resourceVersion read above.
        # 409: someone else wrote it since we read it; they won this round.
        updated = await self._attempt("updating", "PUT", self._path(election.name), lease)
        return updated is not None and self._held(updated, now)

    async def release(self) -> None:
        """Hand the Lease over at once (on a clean shutdown): others need not wait it out."""
        if not self.leading():
            return
        path = self._path(self.election.name)
        try:
            lease = await self._call("GET", path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.election.identity:
                return
            spec.pop("holderIdentity")
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = _now()
            await self._call("PUT", path, lease)
            log.info("released the Lease %s", self._where())
        except (ApiError, OSError) as error:
            log.warning("releasing the Lease %s: %r", self._where(), error)
        finally:
            self.renewed_at = None

    async def _create(self, now: float) -> bool:
        election = self.election
        stamp = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": election.name},
            "spec": {
                "holderIdentity": election.identity,
                "leaseDurationSeconds": int(election.duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        # 409: another candidate created it first.
        created = await self._attempt("creating", "POST", self._path(), body)
        return created is not None and self._held(created, now)

    def _held(self, lease: Mapping[str, Any], now: float) -> bool:
        self.observed, self.observed_at = _record(lease.get("spec") or {}), now
        self.renewed_at = now
        self.contacted_at = self.clock()
        return True

    async def _attempt(
        self, what: str, method: str, path: str, body: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The write's answer, or None when it failed (a 409 conflict silently: a lost race)."""
        try:
            return await self._call(method, path, body)
        except ApiError as error:
            if error.status != 409:
                log.warning("%s the Lease %s: HTTP %s", what, self._where(), error.status)
        except OSError as error:
            log.warning("%s the Lease %s: %r", what, self._where(), error)
        return None

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.client.request, method, path, body, timeout=REQUEST_TIMEOUT
        )

    def _path(self, name: str = "") -> str:
        return resource_path("coordination.k8s.io/v1", self.election.namespace, "leases", name)

    def _where(self) -> str:
        return f"{self.election.namespace}/{self.election.name}"


def _record(spec: Mapping[str, Any]) -> Record:
    return Record(
        holder=spec.get("holderIdentity") or "",
        duration=int(spec.get("leaseDurationSeconds") or 0),
        acquired=spec.get("acquireTime"),
        renewed=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def _now() -> str:
    """Now as a MicroTime: RFC 3339 in UTC with microseconds."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
