"""MongoDB client factories; every address and pool setting comes from :class:`MongoSettings`.

Clients read with ``DB_READ_PREFERENCE`` (the documents' ``primaryPreferred`` unless set):
a secondary answers only while no primary is known. Reads that decide what to write next
(the worker's ledger, the id counter, a retried sign-up) must see the latest writes and are
pinned to the primary with :func:`primary`, whatever the setting says.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pymongo import AsyncMongoClient, MongoClient, ReadPreference
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection

from .mongo_metrics import driver_listeners
from .settings import MongoSettings

Document = dict[str, Any]
_C = TypeVar("_C", Collection[Document], AsyncCollection[Document])


def primary(collection: _C) -> _C:
    """The same collection, reading from the primary only."""
    return collection.with_options(read_preference=ReadPreference.PRIMARY)


def _options(settings: MongoSettings) -> dict[str, Any]:
    return {
        "maxPoolSize": settings.max_pool_size,
        "minPoolSize": settings.min_pool_size,
        "connectTimeoutMS": settings.connect_timeout_ms,
        "socketTimeoutMS": settings.socket_timeout_ms,
        "serverSelectionTimeoutMS": settings.server_selection_timeout_ms,
        "readPreference": settings.read_preference,
        "appname": "crypto-mine",
        "tz_aware": True,
    }


def _listeners(options: dict[str, Any]) -> list[Any]:
    """The driver metrics' listeners, then those of ``options`` (tests add their own)."""
    return [*driver_listeners(), *options.pop("event_listeners", ())]


def mongo_client(settings: MongoSettings, **options: Any) -> MongoClient[Document]:
    """A client with the driver metrics; ``options`` (e.g. ``event_listeners``) go to pymongo."""
    listeners = _listeners(options)
    return MongoClient(settings.uri, **{**_options(settings), **options}, event_listeners=listeners)


def async_mongo_client(settings: MongoSettings) -> AsyncMongoClient[Document]:
    """An asyncio client with the driver metrics of commands and pools (made before the event
    loop runs: a topology listener would need one)."""
    listeners = driver_listeners(topology=False)
    return AsyncMongoClient(settings.uri, **_options(settings), event_listeners=listeners)
