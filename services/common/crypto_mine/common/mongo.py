"""MongoDB client factories; every address and pool setting comes from :class:`MongoSettings`."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, MongoClient

from .settings import MongoSettings

Document = dict[str, Any]


def _options(settings: MongoSettings) -> dict[str, Any]:
    return {
        "maxPoolSize": settings.max_pool_size,
        "minPoolSize": settings.min_pool_size,
        "connectTimeoutMS": settings.connect_timeout_ms,
        "socketTimeoutMS": settings.socket_timeout_ms,
        "serverSelectionTimeoutMS": settings.server_selection_timeout_ms,
        "appname": "crypto-mine",
        "tz_aware": True,
    }


def mongo_client(settings: MongoSettings, **options: Any) -> MongoClient[Document]:
    """A client; ``options`` (e.g. ``event_listeners``) are passed to pymongo."""
    return MongoClient(settings.uri, **{**_options(settings), **options})


def async_mongo_client(settings: MongoSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(settings.uri, **_options(settings))
