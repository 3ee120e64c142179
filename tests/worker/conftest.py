"""MongoDB databases and ledgers for the worker's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from crypto_mine.worker.ledger import Ledger
from devstack.servers import MongoServer


@pytest.fixture
def database(mongo_server: MongoServer, mongo_db: str) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[mongo_db]
    client.close()


@pytest.fixture
def ledger(database: Database[dict[str, Any]]) -> Ledger:
    ledger = Ledger(database, reward_per_click=2)
    ledger.ensure_indexes()
    return ledger
