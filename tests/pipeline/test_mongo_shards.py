"""Every MongoDB command of the click path, checked against the shard keys of a sharded cluster.

The commands are the driver's own (a command listener on the real MongoDB wire server) while
the ledger applies, replays and sweeps batches and the api's reads run; on a sharded cluster
(``mongo_shards.py``) each must go to the shards holding its documents: inserts carry the
whole shard key, and every other filter names the key's first field by value or ``$in``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from crypto_mine.common.names import Collections
from crypto_mine.pipeline.applied_records import CLICK_FIELDS, MARKER_FIELDS, markers_filter
from crypto_mine.pipeline.ledger import Ledger, QueuedClick, clicks_filter
from crypto_mine.pipeline.mongo_shards import SHARD_KEYS, UNSHARDED, ShardKey, commands
from devstack.servers import MongoServer

Db = Database[dict[str, Any]]
KEYS = {key.collection: key for key in SHARD_KEYS}
# Reads that go to every shard on purpose: (collection, command, why).
BROADCASTS = {
    (Collections.balances, "find"): "the marks' sweep reads balances in _id order, off the path",
}
IGNORED = {"getMore", "killCursors", "endSessions", "listIndexes", "ping", "hello", "isMaster"}


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in IGNORED:
            self.seen.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def by_value(condition: Any) -> bool:
    """An equality or an ``$in``: what mongos routes to the chunks holding those values."""
    if isinstance(condition, dict) and any(str(op).startswith("$") for op in condition):
        return set(condition) == {"$in"}
    return True


def targeted(query: dict[str, Any], key: ShardKey) -> bool:
    first = key.fields[0]
    return first in query and by_value(query[first])


def problems(command: dict[str, Any]) -> list[str]:
    """Why ``command`` would reach every shard (or break a sharded collection), if it would."""
    name = next(iter(command))
    collection = command[name]
    key = KEYS.get(collection)
    if key is None:
        return []
    found = []
    if name == "insert":
        found += [
            f"insert into {collection} without {field}"
            for doc in command["documents"]
            for field in key.fields
            if field not in doc
        ]
    elif name in ("update", "delete"):
        entries = command["updates" if name == "update" else "deletes"]
        found += [f"{name} {e['q']}" for e in entries if not targeted(e["q"], key)]
    elif name == "findAndModify":
        if not targeted(command["query"], key):
            found.append(f"findAndModify {command['query']}")
    elif name in ("find", "count", "distinct"):
        query = command.get("filter", command.get("query", {}))
        if not targeted(query, key) and (collection, name) not in BROADCASTS:
            found.append(f"{name} {query}")
    elif name == "aggregate":
        match = command["pipeline"][0].get("$match", {}) if command["pipeline"] else {}
        if not targeted(match, key):
            found.append(f"aggregate {command['pipeline']}")
    elif name == "createIndexes":
        for index in command["indexes"]:
            fields = tuple(index["key"])
            if index.get("unique") and fields[: len(key.fields)] != key.fields:
                found.append(f"unique index {fields} without the shard key {key.fields} first")
    else:
        found.append(f"{name}: a command this check does not know")
    return found


@pytest.fixture
def watched(mongo_server: MongoServer, mongo_db: str) -> Iterator[tuple[Db, Commands]]:
    listener = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[listener]
    )
    yield client[mongo_db], listener
    client.close()


def test_every_command_of_the_click_path_reaches_only_its_shards(
    watched: tuple[Db, Commands],
) -> None:
    database, listener = watched
    ledger = Ledger(database, reward_per_click=2, flush_batches=1, flush_seconds=0)
    ledger.ensure_indexes()
    first = [QueuedClick(f"u{n}", f"k{n}", 1, 1_700_000_000_000) for n in range(4)]
    ledger.apply("b1", first)
    ledger.apply("b1", first)  # a job run again: every click known
    ledger.apply("b2", [first[0], QueuedClick("u0", "new", 2, 1_700_000_000_000)])  # a duplicate
    ledger.flush()
    ledger.sweep("", 10, datetime.now(UTC) + timedelta(seconds=1), lambda _: set())
    # The api's reads: a key beyond the Redis window, a user's balance.
    pairs = [("u0", "k0"), ("u1", "k1"), ("u9", "none")]
    clicks = list(database[Collections.clicks].find(clicks_filter(pairs), CLICK_FIELDS))
    assert len(clicks) == 2
    assert list(database[Collections.batches].find(markers_filter(clicks), MARKER_FIELDS))
    assert database[Collections.balances].find_one({"_id": "u0"})["balance"] == 6  # type: ignore[index]

    names = {(next(iter(c)), c[next(iter(c))]) for c in listener.seen}
    for collection in KEYS:  # the check saw each sharded collection's reads and writes
        assert ("find", collection) in names, names
    assert ("insert", Collections.clicks) in names
    assert [problem for command in listener.seen for problem in problems(command)] == []


def test_the_check_tells_a_broadcast_from_a_targeted_command() -> None:
    clicks = KEYS[Collections.clicks]
    assert problems({"find": "clicks", "filter": {"_id": {"$in": ["1:u:k"]}}})
    assert not problems({"find": "clicks", "filter": clicks_filter([("u", "k")])})
    assert problems({"find": "clicks", "filter": {"user": {"$gt": "u"}}})
    assert problems({"insert": "clicks", "documents": [{"_id": "1:u:k", "user": "u"}]})
    assert problems({"update": "balances", "updates": [{"q": {"user": "u"}, "u": {}}]})
    assert not problems({"update": "balances", "updates": [{"q": {"_id": "u"}, "u": {}}]})
    unique = {"key": {"key": 1}, "unique": True}
    assert problems({"createIndexes": "clicks", "indexes": [unique]})
    assert targeted({"user": "u"}, clicks)
    assert not problems({"find": "users", "filter": {"usernameKey": "x"}})  # unsharded


def test_the_commands_name_every_sharded_collection_once() -> None:
    lines = commands("crypto_mine")
    assert lines[0] == 'sh.enableSharding("crypto_mine")'
    assert lines[1:] == [
        'sh.shardCollection("crypto_mine.clicks", {"user": 1, "key": 1})',
        'sh.shardCollection("crypto_mine.balances", {"_id": "hashed"})',
        'sh.shardCollection("crypto_mine.batches", {"_id": "hashed"})',
    ]
    every = {getattr(Collections, name) for name in vars(Collections) if not name.startswith("_")}
    assert set(KEYS) | set(UNSHARDED) == every
