"""The MongoDB semantics the ledger's guard rests on, checked on the server in use.

The guard is ``{_id: u, "applying.B": {$exists: false}}`` with ``upsert=True``: on a document
whose ``applying`` map holds ``B`` it must not match, and the upsert must then fail with E11000
on ``_id``. The same guard with ``_id: {$in: users}`` in an ``update_many`` must update exactly
the unmarked documents, and count them. (``$ne`` on arrays is wrong on some servers, which is
why no guard uses it.)
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

Db = Database[dict[str, Any]]


def test_exists_on_a_map_key(database: Db) -> None:
    balances = database["semantics"]
    balances.insert_one({"_id": "u", "applying": {"b1": 1, "b2": 1}})
    assert balances.count_documents({"applying.b1": {"$exists": False}}) == 0
    assert balances.count_documents({"applying.b3": {"$exists": False}}) == 1
    assert balances.find_one({"applying.b1": {"$exists": False}}) is None
    missed = balances.update_one({"applying.b1": {"$exists": False}}, {"$inc": {"n": 1}})
    assert missed.matched_count == 0


def guarded(user: str, batch: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"_id": user, f"applying.{batch}": {"$exists": False}},
        {"$inc": {"n": 1}, "$set": {f"applying.{batch}": 1}},
    )


def test_guarded_upsert_collides_when_the_guard_fails(database: Db) -> None:
    balances = database["semantics"]
    balances.insert_one({"_id": "u", "applying": {"b1": 1}, "n": 1})
    with pytest.raises(DuplicateKeyError):
        balances.update_one(*guarded("u", "b1"), upsert=True)
    assert balances.find_one({"_id": "u"}) == {"_id": "u", "applying": {"b1": 1}, "n": 1}
    balances.update_one(*guarded("u", "b2"), upsert=True)
    assert balances.find_one({"_id": "u"}) == {"_id": "u", "applying": {"b1": 1, "b2": 1}, "n": 2}


def test_guarded_upsert_in_an_unordered_bulk(database: Db) -> None:
    balances = database["semantics"]
    balances.insert_one({"_id": "done", "applying": {"b1": 1}, "n": 1})
    with pytest.raises(BulkWriteError) as caught:
        balances.bulk_write(
            [UpdateOne(*guarded(user, "b1"), upsert=True) for user in ("done", "new")],
            ordered=False,
        )
    errors = caught.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(0, 11000)]
    assert balances.find_one({"_id": "new"}) == {"_id": "new", "applying": {"b1": 1}, "n": 1}
    assert balances.find_one({"_id": "done"})["n"] == 1  # type: ignore[index]


def test_guarded_update_many_updates_only_unmarked_documents_and_counts_them(
    database: Db,
) -> None:
    balances = database["semantics"]
    balances.insert_many(
        [
            {"_id": "marked", "applying": {"b1": 1}, "n": 1},
            {"_id": "plain", "applying": {"old": 1}, "n": 1},
        ]
    )
    result = balances.update_many(
        {"_id": {"$in": ["marked", "plain", "missing"]}, "applying.b1": {"$exists": False}},
        {"$inc": {"n": 1}, "$set": {"applying.b1": 2}, "$unset": {"applying.old": ""}},
    )
    assert result.matched_count == 1  # neither the marked one nor the missing one
    assert list(balances.find(sort=[("_id", 1)])) == [
        {"_id": "marked", "applying": {"b1": 1}, "n": 1},
        {"_id": "plain", "applying": {"b1": 2}, "n": 2},
    ]


def test_unset_removes_only_that_batch(database: Db) -> None:
    balances = database["semantics"]
    balances.insert_many([{"_id": "a", "applying": {"b1": 1, "b2": 1}}, {"_id": "b"}])
    balances.update_many({"_id": {"$in": ["a", "b"]}}, {"$unset": {"applying.b1": ""}})
    assert balances.find_one({"_id": "a"})["applying"] == {"b2": 1}  # type: ignore[index]
    assert balances.find_one({"_id": "b"}) == {"_id": "b"}


def test_unique_index_reports_each_duplicate_in_an_unordered_insert(database: Db) -> None:
    clicks = database["semantics_clicks"]
    clicks.create_index([("user", 1), ("key", 1)], unique=True)
    clicks.insert_one({"user": "u", "key": "k1"})
    with pytest.raises(BulkWriteError) as caught:
        clicks.insert_many(
            [{"user": "u", "key": k} for k in ("k0", "k1", "k2", "k1")], ordered=False
        )
    assert sorted(e["index"] for e in caught.value.details["writeErrors"]) == [1, 3]
    assert clicks.count_documents({}) == 3
