"""The ledger's edges: flush timing on its own clock, users without a balance, concurrent markers,
reruns of a batch this process finished, the sweep of one shard, failures in the balance writes,
and an E11000 that is not a repeat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crypto_mine.pipeline import ledger as ledger_module
from crypto_mine.pipeline.ledger import Ledger, QueuedClick, UserTotal, to_datetime, to_ms
from devstack.servers import MongoServer

Db = Database[dict[str, Any]]


class Clock:
    """The ledger's monotonic clock, moved by the test; wall time stays real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time_ns() -> int:
        return time.time_ns()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(ledger_module, "time", clock)
    return clock


class Commands(monitoring.CommandListener):
    """Calls ``on(event)`` before each command is sent."""

    def __init__(self) -> None:
        self.on: Any = lambda event: None
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name == "update":
            updates = event.command["updates"]
            name += f" {len(updates)}/{sum(bool(u.get('multi')) for u in updates)}"
        self.names.append(name)
        self.on(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Watched:
    """A ledger whose commands a test sees before they are sent, and the balances as a second
    client (another worker) writes them."""

    commands: Commands
    database: Db
    ledger: Ledger
    others: Collection[dict[str, Any]]


@pytest.fixture
def watched(mongo_server: MongoServer, mongo_db: str) -> Iterator[Watched]:
    commands = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[commands]
    )
    other: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    try:
        ledger = Ledger(
            client[mongo_db], reward_per_click=2, flush_batches=1000, flush_seconds=3600
        )
        ledger.ensure_indexes()
        yield Watched(commands, client[mongo_db], ledger, other[mongo_db]["balances"])
    finally:
        other.close()
        client.close()


def marks_of(database: Db) -> dict[str, list[str]]:
    return {d["_id"]: sorted(d.get("applying") or {}) for d in database["balances"].find()}


def balances(database: Db) -> dict[str, tuple[int, int]]:
    return {d["_id"]: (d["balance"], d["clicks"]) for d in database["balances"].find()}


def one(user: str, key: str) -> list[QueuedClick]:
    return [QueuedClick(user, key, 1, 0)]


def test_the_flush_period_counts_from_the_first_finished_batch(database: Db, clock: Clock) -> None:
    ledger = Ledger(database, reward_per_click=2, flush_batches=1000)  # five seconds by default
    ledger.apply("b0", one("u0", "k0"))
    clock.now += 4.5
    ledger.apply("b1", one("u1", "k1"))  # not yet a period: no flush
    clock.now += 0.5
    ledger.apply("b2", one("u1", "k2"))  # five seconds exactly: a flush, u0 is aged
    ledger.apply("b3", one("u1", "k3"))  # the first batch of the next period
    assert marks_of(database)["u0"] == ["b0"]
    clock.now += 5.0
    ledger.apply("b4", one("u1", "k4"))  # its end: u0 wrote nothing, it is unmarked
    assert marks_of(database) == {"u0": [], "u1": ["b4"]}


def test_the_flush_comes_every_sixty_four_batches_by_default(database: Db, clock: Clock) -> None:
    ledger = Ledger(database, reward_per_click=2)  # the clock stands still: batches count
    ledger.apply("b0", one("u0", "k0"))
    for n in range(1, 127):
        ledger.apply(f"b{n}", one("u1", f"k{n}"))  # the 64th: a flush, u0 is aged
    assert marks_of(database)["u0"] == ["b0"]
    ledger.apply("b127", one("u1", "k127"))  # the 128th: the next flush unmarks u0
    assert marks_of(database)["u0"] == []


def test_to_ms_of_no_date_is_zero() -> None:
    assert to_ms(None) == 0


def test_a_user_whose_clicks_are_all_duplicates_of_an_unapplied_batch(
    ledger: Ledger, database: Db
) -> None:
    """Another batch inserted the user's only click and was cut before its balance write: the
    user has no balance yet, and is reported with zeros."""
    database["clicks"].insert_one(
        {
            "_id": "2:u1:k",
            "user": "u1",
            "key": "k",
            "clicks": 3,
            "reward": 6,
            "batch": "other",
            "acceptedAt": to_datetime(5),
            "appliedAt": to_datetime(7),
        }
    )
    result = ledger.apply("b1", [QueuedClick("u1", "k", 3, 5)])
    assert result.users == [UserTotal("u1", 0, 0, 0)]
    assert [(o.duplicate, o.balance) for o in result.outcomes] == [(True, 0)]
    assert result.fresh == 0
    assert balances(database) == {}


def test_a_run_whose_marker_another_run_wrote_first_reports_that_markers_balances(
    ledger: Ledger, database: Db
) -> None:
    database["batches"].insert_one(
        {"_id": "b1", "at": datetime.now(UTC), "balances": [["u1", 99], ["u2", 98]]}
    )
    result = ledger.apply("b1", [QueuedClick("u1", "k", 1, 0), QueuedClick("u2", "k", 1, 0)])
    assert [o.balance for o in result.outcomes] == [99, 98]


def test_a_rerun_of_a_batch_this_ledger_finished_after_its_marker_is_gone(database: Db) -> None:
    """A batch this process finished runs again once its marker is gone (its TTL), its mark
    still waiting here: its users' marks refuse it, and the flush removes them after."""
    ledger = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
    ledger.ensure_indexes()
    ledger.apply("b0", one("u1", "k0"))
    ledger.apply("b1", one("u1", "k1"))  # b0's mark rode on this write; b1's waits
    database["batches"].delete_one({"_id": "b1"})
    ledger.apply("b1", one("u1", "k1"))
    assert balances(database) == {"u1": (4, 2)}
    assert marks_of(database) == {"u1": ["b1"]}
    ledger.flush()
    assert marks_of(database) == {"u1": []}


def test_four_users_with_equal_shares_take_one_statement(watched: Watched) -> None:
    users = [f"u{n}" for n in range(4)]
    watched.ledger.apply("b0", [QueuedClick(user, "k0", 1, 0) for user in users])
    watched.commands.names.clear()
    watched.ledger.apply("b1", [QueuedClick(user, "k1", 1, 0) for user in users])
    assert watched.commands.names == ["insert", "update 1/1", "find", "insert"]
    watched.commands.names.clear()
    watched.ledger.apply("b2", [QueuedClick(user, "k2", 1, 0) for user in users[:3]])
    assert watched.commands.names == ["insert", "update 3/0", "find", "insert"]


def test_a_rerun_applies_the_users_after_one_already_marked(ledger: Ledger, database: Db) -> None:
    """The balance writes are unordered: a refused write does not stop the ones after it."""
    batch = [QueuedClick("u1", "k", 1, 0), QueuedClick("u2", "k", 1, 0)]
    ledger._insert(
        [
            {"_id": f"2:{c.user}:k", "user": c.user, "key": "k", "clicks": 1, "reward": 2}
            | {"batch": "b1", "acceptedAt": to_datetime(0), "appliedAt": to_datetime(0)}
            for c in batch
        ]
    )
    database["balances"].update_one(*ledger._guarded("b1", "u1", [2, 1, 0]), upsert=True)
    ledger.apply("b1", batch)  # cut after u1 got its share: u2 still has to get its own
    assert balances(database) == {"u1": (2, 1), "u2": (2, 1)}


def test_the_sweep_of_one_shard_leaves_the_other_shards_users_alone(
    ledger: Ledger, database: Db
) -> None:
    database["balances"].insert_many(
        [
            {"_id": "u0", "balance": 5, "clicks": 5},  # written before marks existed
            {"_id": "u1", "balance": 2, "clicks": 1, "applying": {"gone": 1}},
            {"_id": "u2", "balance": 2, "clicks": 1, "applying": {"gone": 1}},
        ]
    )
    asked: list[str] = []

    def mine(user: str) -> bool:
        asked.append(user)
        return user != "u2"

    swept = ledger.sweep("", 10, to_datetime(1_000), lambda batches: set(), mine)
    assert swept.removed == 1
    assert sorted(asked) == ["u1", "u2"]
    assert marks_of(database) == {"u0": [], "u1": [], "u2": ["gone"]}


@pytest.mark.parametrize("users", [1, 4], ids=["one-by-one", "grouped"])
def test_a_balance_write_cut_by_the_server_going_away_gives_back_the_marks_riding_on_it(
    tmp_path: Path, users: int
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    commands = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo.uri, tz_aware=True, serverSelectionTimeoutMS=300, event_listeners=[commands]
    )
    try:
        database = client["cut"]
        ledger = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
        ledger.ensure_indexes()
        names = [f"u{n}" for n in range(users)]
        ledger.apply("b0", [QueuedClick(user, "k0", 1, 0) for user in names])

        def stop(event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "update":
                commands.on = lambda event: None
                mongo.stop()

        commands.on = stop
        with pytest.raises(PyMongoError):
            ledger.apply("b1", [QueuedClick(user, "k1", 1, 0) for user in names])
        mongo.start()
        ledger.flush()  # b0's marks that rode on the cut write wait again: removed now
        assert {user: "b0" in marks for user, marks in marks_of(database).items()} == {
            user: False for user in names
        }
    finally:
        client.close()
        mongo.stop()


def test_a_new_user_created_by_another_batch_at_once_gets_this_batchs_share(
    watched: Watched,
) -> None:
    """The guarded upsert of a new user loses the race to another batch creating it (E11000)
    and the read after it finds the user without this batch's mark: the share is settled by
    one more guarded write. The race is staged: u1 refuses the write, and is the other batch's
    balance by the time it is read."""
    database = watched.database
    database["balances"].insert_one({"_id": "u1", "applying": {"b1": 1}})  # refuses b1

    def lost_race(event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and "applying.b1" in event.command.get("filter", {}):
            watched.commands.on = lambda event: None
            watched.others.replace_one(
                {"_id": "u1"}, {"balance": 6, "clicks": 3, "applying": {"b9": 1}}
            )

    watched.commands.on = lost_race
    watched.ledger.apply("b1", [QueuedClick("u1", "k", 2, 0), QueuedClick("u2", "k", 1, 0)])
    assert balances(database) == {"u1": (10, 5), "u2": (2, 1)}
    assert marks_of(database) == {"u1": ["b1", "b9"], "u2": ["b1"]}
    assert database["batches"].count_documents({"_id": "b1"}) == 1


def test_a_settle_that_loses_the_race_again_tries_again(watched: Watched) -> None:
    """After an E11000, the guarded write of the settle is refused once more (another batch
    created the user again in between): the settle reads and writes again."""
    steps = iter(["update", "find"])
    step = next(steps)

    def races(event: monitoring.CommandStartedEvent) -> None:
        nonlocal step
        if event.command_name != step:
            return
        if step == "update":  # the settle's first write: the user is there, refusing it
            watched.others.insert_one({"_id": "u1", "applying": {"b1": 1}})
        else:  # the settle's next read: the other batch's balance, without b1
            watched.others.replace_one({"_id": "u1"}, {"balance": 6, "clicks": 3})
        step = next(steps, "")

    watched.commands.on = races
    watched.ledger._settle("b1", "u1", [4, 2, 0])
    assert balances(watched.database) == {"u1": (10, 5)}
    assert marks_of(watched.database) == {"u1": ["b1"]}


def test_a_run_refused_part_way_leaves_no_mark_of_its_batch_to_be_flushed(database: Db) -> None:
    """Only a finished batch's marks wait to be removed: after a run whose write failed for one
    user, a flush leaves the others' marks of that batch, and the rerun applies each share once."""
    ledger = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
    ledger.ensure_indexes()
    ledger.apply("b0", one("u1", "k0"))  # b0's mark on u1 waits for u1's next write
    database["balances"].insert_one({"_id": "u2", "balance": "broken", "clicks": 0})
    batch = [QueuedClick("u1", "k1", 1, 0), QueuedClick("u2", "k1", 1, 0)]
    with pytest.raises(PyMongoError):
        ledger.apply("b1", batch)  # u1 got its share (and lost b0's mark), u2 refused it
    assert marks_of(database) == {"u1": ["b1"], "u2": []}
    ledger.flush()
    assert marks_of(database) == {"u1": ["b1"], "u2": []}
    database["balances"].update_one({"_id": "u2"}, {"$set": {"balance": 0}})
    ledger.apply("b1", batch)
    assert balances(database) == {"u1": (4, 2), "u2": (2, 1)}


def test_a_batch_reads_only_its_own_clicks_and_users(
    mongo_server: MongoServer, mongo_db: str
) -> None:
    """However many other clicks and balances there are, a batch's reads bring back the
    documents of its own clicks and users only (an old click found by its user and key too)."""
    returned: list[int] = []

    class Reads(Commands):
        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            cursor = event.reply.get("cursor")
            if event.command_name in ("find", "getMore") and cursor is not None:
                returned.append(len(cursor.get("firstBatch", cursor.get("nextBatch", []))))

    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[Reads()]
    )
    try:
        database = client[mongo_db]
        ledger = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
        ledger.ensure_indexes()
        ledger.apply("others", [QueuedClick(f"v{n}", "k", 1, 0) for n in range(30)])
        database["clicks"].insert_one(  # stored before the _id came from (user, key)
            {"user": "u1", "key": "old", "clicks": 1, "reward": 2, "batch": "before"}
            | {"acceptedAt": to_datetime(0), "appliedAt": to_datetime(0)}
        )
        returned.clear()
        result = ledger.apply("b1", [QueuedClick("u1", "old", 1, 0), QueuedClick("u1", "k", 1, 0)])
        assert [o.duplicate for o in result.outcomes] == [True, False]
        # by _id: none; by user and key: the old click; the marker: none; u1's balance
        assert returned == [0, 1, 0, 1]
    finally:
        client.close()
