"""The MongoDB driver's view, from pymongo's monitoring hooks: command durations and failures,
connection pool use and (synchronous clients: the worker's) whether a writable server is
reachable.

Every client made by :mod:`crypto_mine.common.mongo` carries these listeners. They are called
synchronously by the driver, so each one does a dictionary lookup and one metric update.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram
from pymongo import monitoring

from .names import Metrics

COMMAND_SECONDS = Histogram(
    Metrics.mongo_command_duration,
    "Time from sending a MongoDB command to its reply (failed commands included), by command.",
    ["command"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMAND_FAILURES = Counter(
    Metrics.mongo_command_failures,
    "MongoDB commands that failed (error reply or network error), by command.",
    ["command"],
)
POOL_CONNECTIONS = Gauge(
    Metrics.mongo_pool_connections,
    "Connections open in the driver's pool of one server.",
    ["address"],
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    Metrics.mongo_pool_in_use,
    "Connections of the pool of one server checked out by an operation now.",
    ["address"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    Metrics.mongo_pool_max,
    "Largest size of the pool of one server (maxPoolSize, DB_MAX_POOL_SIZE).",
    ["address"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    Metrics.mongo_pool_waiting,
    "Operations waiting for a connection of the pool of one server.",
    ["address"],
    multiprocess_mode="livesum",
)
CHECKOUT_FAILURES = Counter(
    Metrics.mongo_checkout_failures,
    "Operations that got no pooled connection, by reason (timeout = pool exhausted, "
    "connectionError, poolClosed).",
    ["reason"],
)

# Unlabelled views of the histogram's children, by command name (a lookup takes a lock).
_commands: dict[str, Histogram] = {}
_failures: dict[str, Counter] = {}


def _address(address: tuple[str, int | None]) -> str:
    host, port = address
    return f"{host}:{port}" if port is not None else host


def _observe(command: str, micros: int) -> None:
    observe = _commands.get(command)
    if observe is None:
        observe = _commands[command] = COMMAND_SECONDS.labels(command)
    observe.observe(micros / 1e6)


class CommandMetrics(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        _observe(event.command_name, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        _observe(event.command_name, event.duration_micros)
        count = _failures.get(event.command_name)
        if count is None:
            count = _failures[event.command_name] = COMMAND_FAILURES.labels(event.command_name)
        count.inc()


class PoolMetrics(monitoring.ConnectionPoolListener):
    def __init__(self) -> None:
        self._sizes: dict[tuple[str, int | None], int] = {}

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        size = event.options.get("maxPoolSize", 100)
        POOL_MAX.labels(_address(event.address)).inc(size)
        self._sizes[event.address] = size

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        POOL_MAX.labels(_address(event.address)).dec(self._sizes.pop(event.address, 0))

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        POOL_CONNECTIONS.labels(_address(event.address)).inc()

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        POOL_CONNECTIONS.labels(_address(event.address)).dec()

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        POOL_WAITING.labels(_address(event.address)).inc()

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        POOL_WAITING.labels(_address(event.address)).dec()
        CHECKOUT_FAILURES.labels(event.reason).inc()

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        address = _address(event.address)
        POOL_WAITING.labels(address).dec()
        POOL_IN_USE.labels(address).inc()

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        POOL_IN_USE.labels(_address(event.address)).dec()


class TopologyMetrics(monitoring.TopologyListener):
    """Sets ``mongodb_client_writable`` from every synchronous client's view of its servers.

    Created with the first such client, so that processes without one export no such series.
    (An asyncio client given a topology listener must be made inside a running event loop,
    which the api's and id-allocator's are not: they report commands and pools only.)
    """

    def __init__(self) -> None:
        self._writable: dict[object, bool] = {}
        self._gauge = Gauge(
            Metrics.mongo_writable,
            "0 while a MongoDB client of the process finds no writable server (MongoDB "
            "unreachable or without a primary), else 1.",
            multiprocess_mode="livemin",
        )

    def opened(self, event: monitoring.TopologyOpenedEvent) -> None:
        pass

    def description_changed(self, event: monitoring.TopologyDescriptionChangedEvent) -> None:
        self._set(event.topology_id, event.new_description.has_writable_server())

    def closed(self, event: monitoring.TopologyClosedEvent) -> None:
        self._writable.pop(event.topology_id, None)
        self._gauge.set(1 if all(self._writable.values()) else 0)

    def _set(self, topology: object, writable: bool) -> None:
        self._writable[topology] = writable
        self._gauge.set(1 if all(self._writable.values()) else 0)


@cache
def _topology() -> TopologyMetrics:
    return TopologyMetrics()


def driver_listeners(topology: bool = True) -> list[monitoring._EventListener]:
    """Listeners for a new client: its own command and pool listeners, and (``topology``, for
    synchronous clients) the process's topology listener."""
    listeners: list[monitoring._EventListener] = [CommandMetrics(), PoolMetrics()]
    return [*listeners, _topology()] if topology else listeners
