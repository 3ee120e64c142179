"""Fixtures of the allocator tests: a real nx-27017 MongoDB server, shared by the session."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack.servers import MongoServer, serving  # noqa: E402


@pytest.fixture(scope="session")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    yield from serving(MongoServer(tmp_path_factory.mktemp("allocator-mongo")))


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A MongoDB server of this test alone, which the test may stop and start again."""
    yield from serving(MongoServer(tmp_path / "mongo"))


@pytest.fixture
def counter_name() -> str:
    """A counter of this test alone on the shared server."""
    return f"test-{uuid.uuid4().hex[:12]}"
