"""Exactly once in effect: repeats, partial runs cut at every step, concurrent runs."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pymongo import MongoClient, monitoring
from pymongo.database import Database
from pymongo.errors import AutoReconnect, PyMongoError

from crypto_mine.common.names import JOB_FAILURE_TTL
from crypto_mine.pipeline.ledger import (
    Ledger,
    QueuedClick,
    Swept,
    click_id,
    last_click_ms,
    stored_ms,
    to_datetime,
    to_ms,
)
from devstack.servers import MongoServer

Db = Database[dict[str, Any]]


def clicks_for(users: int, per_user: int, prefix: str = "k") -> list[QueuedClick]:
    return [
        QueuedClick(f"u{u}", f"{prefix}{u}-{i}", 1 + (i % 3), 1_700_000_000_000 + i)
        for u in range(users)
        for i in range(per_user)
    ]


def expected(batches: list[list[QueuedClick]], reward: int = 2) -> dict[str, tuple[int, int]]:
    """Balance and click count per user: the sum over distinct (user, key)."""
    seen: dict[tuple[str, str], QueuedClick] = {}
    for batch in batches:
        for click in batch:
            seen.setdefault((click.user, click.key), click)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for click in seen.values():
        totals[click.user][0] += click.clicks * reward
        totals[click.user][1] += click.clicks
    return {user: (b, c) for user, (b, c) in totals.items()}


def balances(db: Db) -> dict[str, tuple[int, int]]:
    return {d["_id"]: (d["balance"], d["clicks"]) for d in db["balances"].find()}


def unapplied_records(batch: str, clicks: list[QueuedClick]) -> list[dict[str, object]]:
    """The click records of ``batch`` as a run cut right after inserting them leaves them."""
    return [
        {
            "user": c.user,
            "key": c.key,
            "clicks": c.clicks,
            "reward": 2 * c.clicks,
            "batch": batch,
            "acceptedAt": None,
            "appliedAt": None,
        }
        for c in clicks
    ]


def assert_clean(ledger: Ledger, db: Db) -> None:
    """No batch is left marked on a user once its run finished and the ledger flushed."""
    ledger.flush()
    assert [d["_id"] for d in db["balances"].find() if d.get("applying")] == []


def test_a_batch_applies_once_however_often_it_runs(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(5, 4)
    first = ledger.apply("b1", batch)
    assert first.fresh == sum(c.clicks for c in batch)
    again = ledger.apply("b1", batch)
    assert again.fresh == first.fresh  # still its own clicks, not duplicates
    assert not any(o.duplicate for o in again.outcomes)
    assert balances(database) == expected([batch])
    assert database["clicks"].count_documents({}) == len(batch)
    assert database["batches"].count_documents({"_id": "b1"}) == 1
    assert_clean(ledger, database)
    # OutcomeRecorder carry each click's reward and the user's balance after the batch.
    by_user = expected([batch])
    for outcome in again.outcomes:
        assert outcome.reward == outcome.click.clicks * 2
        assert outcome.balance == by_user[outcome.click.user][0]


def test_a_key_applied_by_another_batch_is_a_duplicate(ledger: Ledger, database: Db) -> None:
    ledger.apply("b1", [QueuedClick("u1", "k", 3, 0)])
    result = ledger.apply("b2", [QueuedClick("u1", "k", 3, 0), QueuedClick("u1", "other", 1, 0)])
    assert [o.duplicate for o in result.outcomes] == [True, False]
    assert result.outcomes[0].reward == 6
    assert result.fresh == 1
    assert balances(database) == {"u1": (8, 4)}


def test_run_cut_after_the_insert(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(3, 3)
    ledger._insert(unapplied_records("b1", batch[:5]))
    ledger.apply("b1", batch)
    assert balances(database) == expected([batch])
    assert_clean(ledger, database)


def test_run_cut_inside_the_balance_updates(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(4, 2)
    ledger.apply("b0", clicks_for(4, 1, prefix="early"))  # users exist already
    ledger._insert(unapplied_records("b1", batch))
    # Two of the four users got their share of b1 before the run died.
    for user in ("u0", "u2"):
        share = [c for c in batch if c.user == user]
        database["balances"].update_one(
            *ledger._guarded(
                "b1", user, [sum(2 * c.clicks for c in share), sum(c.clicks for c in share), 0]
            ),
            upsert=True,
        )
    ledger.apply("b1", batch)
    assert balances(database) == expected([clicks_for(4, 1, prefix="early"), batch])
    assert_clean(ledger, database)


def test_run_cut_after_the_marker_before_the_pull(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(3, 2)
    ledger.apply("b1", batch)
    ledger.flush()
    # Put the state back to "marker written, users still marked": as if the pull never ran.
    database["balances"].update_many({}, {"$set": {"applying.b1": 1}})
    ledger.apply("b1", batch)
    assert balances(database) == expected([batch])
    assert_clean(ledger, database)


def test_run_after_the_pull_before_the_outcome(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(3, 2)
    ledger.apply("b1", batch)
    ledger.apply("b1", batch)
    ledger.apply("b1", batch)
    assert balances(database) == expected([batch])


def test_concurrent_runs_of_one_batch(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(20, 3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ledger.apply("b1", batch)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert balances(database) == expected([batch])
    assert_clean(ledger, database)


def test_concurrent_batches_creating_the_same_new_users(ledger: Ledger, database: Db) -> None:
    batches = [[QueuedClick(f"u{u}", f"b{b}-{u}", 1, 0) for u in range(10)] for b in range(8)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            ledger.apply(f"b{index}", batches[index])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(b,)) for b in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert balances(database) == expected(batches)
    assert_clean(ledger, database)


def test_last_click_is_the_latest_accepted(ledger: Ledger, database: Db) -> None:
    ledger.apply("b1", [QueuedClick("u1", "a", 1, 2_000), QueuedClick("u1", "b", 1, 5_000)])
    ledger.apply("b2", [QueuedClick("u1", "c", 1, 3_000)])
    totals = ledger._totals({"u1"})
    assert totals["u1"].last_click_ms == 5_000


def marks_of(database: Db) -> dict[str, list[str]]:
    return {d["_id"]: sorted(d.get("applying") or {}) for d in database["balances"].find()}


def test_marks_go_with_the_next_write_or_after_a_flush_period(database: Db) -> None:
    ledger = Ledger(database, reward_per_click=2, flush_batches=3, flush_seconds=3600)
    ledger.ensure_indexes()
    ledger.apply("b0", [QueuedClick("u1", "k0", 1, 0), QueuedClick("u2", "k0", 1, 0)])
    assert marks_of(database) == {"u1": ["b0"], "u2": ["b0"]}
    assert database["batches"].count_documents({}) == 1  # the marker at once
    # The users' next balance write takes their marks away in the same write.
    ledger.apply("b1", [QueuedClick("u1", "k1", 1, 0), QueuedClick("u2", "k1", 1, 0)])
    assert marks_of(database) == {"u1": ["b1"], "u2": ["b1"]}
    ledger.apply("b2", [QueuedClick("u1", "k2", 1, 0)])  # the third batch: a flush, nothing old
    assert marks_of(database) == {"u1": ["b2"], "u2": ["b1"]}
    ledger.apply("b3", [QueuedClick("u1", "k3", 1, 0)])
    ledger.apply("b4", [QueuedClick("u1", "k4", 1, 0)])
    assert marks_of(database) == {"u1": ["b4"], "u2": ["b1"]}
    # u2 wrote nothing for a whole flush period: this flush unmarks it by one statement,
    # while u1, which wrote, waits for its next write.
    ledger.apply("b5", [QueuedClick("u1", "k5", 1, 0)])
    assert marks_of(database) == {"u1": ["b5"], "u2": []}
    assert database["batches"].count_documents({}) == 6
    ledger.flush()  # the final flush leaves nothing marked
    assert marks_of(database) == {"u1": [], "u2": []}
    assert balances(database) == {"u1": (12, 6), "u2": (4, 2)}


def test_a_refused_write_gives_back_the_marks_riding_on_it(database: Db) -> None:
    ledger = Ledger(database, reward_per_click=2, flush_batches=1, flush_seconds=3600)
    ledger.ensure_indexes()
    ledger.apply("b0", [QueuedClick("u1", "k0", 1, 0)])  # flushed at once: b0's mark waits on u1
    killed = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
    killed.apply("bx", [QueuedClick("u1", "kx", 1, 0)])
    database["batches"].delete_one({"_id": "bx"})  # as if killed before writing the marker
    # bx runs again here: its guarded write on u1 is refused (already marked), so the unmarking
    # of b0 that rode on it did not happen and must wait for the next chance.
    ledger.apply("bx", [QueuedClick("u1", "kx", 1, 0)])
    assert balances(database) == {"u1": (4, 2)}
    ledger.flush()
    assert marks_of(database) == {"u1": []}


def test_a_flush_that_fails_is_tried_again(tmp_path: Path) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri, serverSelectionTimeoutMS=300)
    try:
        database = client["flush"]
        ledger = Ledger(database, reward_per_click=1, flush_batches=1000, flush_seconds=3600)
        ledger.apply("b1", [QueuedClick("u1", "k", 1, 0)])
        mongo.stop()
        with pytest.raises(PyMongoError):
            ledger.flush()
        mongo.start()
        ledger.flush()
        assert database["batches"].count_documents({"_id": "b1"}) == 1
        assert database["balances"].find_one({"_id": "u1"})["applying"] == {}  # type: ignore[index]
    finally:
        client.close()
        mongo.stop()


def test_a_batch_of_many_users_costs_four_commands_without_cursor_round_trips(
    mongo_server: MongoServer, mongo_db: str
) -> None:
    """Insert, balance updates, balances read, marker: each one command, even past the server's
    first cursor batch of 101 documents; users with equal shares take one update statement."""
    commands: list[str] = []

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            name = event.command_name
            if name == "update":  # how many statements, and how many of them update_many
                updates = event.command["updates"]
                name += f" {len(updates)}/{sum(bool(u.get('multi')) for u in updates)}"
            commands.append(name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_server.uri, tz_aware=True, event_listeners=[Listener()]
    )
    try:
        ledger = Ledger(client[mongo_db], reward_per_click=2, flush_batches=1000)
        ledger.ensure_indexes()
        # 300 users, three shares (1, 2 or 3 clicks at the same time) and a user of its own.
        first = [*clicks_for(300, 1), QueuedClick("solo", "k", 1, 5)]
        ledger.apply("first", first)
        batch = [QueuedClick(f"u{n}", f"next{n}", 1 + n % 3, 7) for n in range(300)]
        batch.append(QueuedClick("solo", "next", 1, 8))
        commands.clear()
        ledger.apply("wide", batch)
        assert commands == [
            "insert",
            "update 1/1",
            "update 1/1",
            "update 1/1",
            "update 1/0",
            "find",
            "insert",  # the marker
        ]
        commands.clear()
        # A repeat: the clicks are found in one read, the marker in one more (no balance
        # update is tried), and the balances read.
        ledger.apply("wide", batch)
        assert commands == ["insert", "find", "find", "find"]
        # Cut before the marker: every guarded update is refused, and one read per share
        # finds those users marked (not one read per user).
        client[mongo_db]["batches"].delete_one({"_id": "wide"})
        commands.clear()
        ledger.apply("wide", batch)
        assert commands == ["insert", "find", "find"] + ["update 1/1", "find"] * 3 + [
            "update 1/0",
            "find",
            "find",
            "insert",
        ]
        assert balances(client[mongo_db]) == expected([first, batch])
    finally:
        client.close()


def test_new_users_are_upserted_after_their_share_found_no_balance(database: Db) -> None:
    ledger = Ledger(database, reward_per_click=2, flush_batches=1000)
    ledger.ensure_indexes()
    ledger.apply("b0", [QueuedClick(f"u{n}", "k0", 1, 0) for n in range(3)])
    # Six users with one share: three have balances, three are new.
    batch = [QueuedClick(f"u{n}", "k1", 2, 9) for n in range(6)]
    result = ledger.apply("b1", batch)
    assert balances(database) == expected(
        [[QueuedClick(f"u{n}", "k0", 1, 0) for n in range(3)], batch]
    )
    assert {o.click.user: o.balance for o in result.outcomes} == {
        "u0": 6,
        "u1": 6,
        "u2": 6,
        "u3": 4,
        "u4": 4,
        "u5": 4,
    }
    assert {d["_id"]: d["lastClickMs"] for d in database["balances"].find()} == {
        f"u{n}": 9 for n in range(6)
    }
    assert_clean(ledger, database)


def test_the_sweep_removes_old_marks_of_batches_that_can_never_apply_again(
    database: Db,
) -> None:
    # Three processes, each killed after applying a batch, before unmarking its users.
    applied = [clicks_for(3, 1, prefix=batch) for batch in ("done", "finished", "queued")]
    for batch, clicks in zip(("done", "finished", "queued"), applied, strict=True):
        killed = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
        killed.ensure_indexes()
        killed.apply(batch, clicks)
    # "done" got its marker; the others were cut before theirs: "finished" can never run again
    # (its job is gone), "queued" may.
    database["batches"].delete_many({"_id": {"$in": ["finished", "queued"]}})
    before = balances(database)
    asked: list[list[str]] = []

    def runnable(batches: list[str]) -> set[str]:
        asked.append(batches)
        return {"queued"} & set(batches)

    sweeper = Ledger(database, reward_per_click=2)
    young = sweeper.sweep("", 10, datetime.now(UTC) - timedelta(minutes=10), runnable)
    assert (young.removed, asked) == (0, [])  # marks younger than the age are left alone
    old = datetime.now(UTC) + timedelta(seconds=1)
    first = sweeper.sweep("", 2, old, runnable)  # two balances per step: u0, u1
    assert first == Swept("u1", 4)
    assert asked == [["finished", "queued"]]  # "done" has its marker: no question
    last = sweeper.sweep(first.after, 2, old, runnable)
    assert last == Swept("", 2)  # the end: the next step starts from the first balance
    marks = {d["_id"]: d.get("applying", {}) for d in database["balances"].find()}
    assert {user: list(m) for user, m in marks.items()} == {f"u{n}": ["queued"] for n in range(3)}
    assert balances(database) == before  # balances untouched
    # The batch that may still run is still guarded; the swept ones would be skipped by marker
    # ("done") or never come again ("finished": its job completed).
    killed.apply("queued", applied[2])
    assert balances(database) == before


def test_the_last_click_time_follows_the_latest_batch(ledger: Ledger, database: Db) -> None:
    """A later batch moves ``lastClickMs`` forward, an earlier one (applied late) does not."""
    ledger.apply("b1", [QueuedClick("u", "k1", 1, 1_700_000_000_000)])
    ledger.apply("b2", [QueuedClick("u", "k2", 1, 1_700_000_005_000)])
    late = ledger.apply("b3", [QueuedClick("u", "k3", 1, 1_700_000_001_000)])
    assert late.users[0].last_click_ms == 1_700_000_005_000
    doc = database["balances"].find_one({"_id": "u"})
    assert doc is not None
    assert doc["lastClickMs"] == 1_700_000_005_000


def test_mark_and_last_click_times_of_every_stored_form_are_read() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    ms = 1_767_323_045_678
    assert stored_ms(ms) == ms
    assert stored_ms(moment) == ms
    assert stored_ms(moment.replace(tzinfo=None)) == ms  # a naive date is UTC
    assert stored_ms(moment.astimezone(timezone(timedelta(hours=2)))) == ms
    assert stored_ms("2026-01-02T03:04:05.678000") == ms  # its text, as older versions wrote it
    assert stored_ms("not a time") == 0
    assert last_click_ms({"lastClickMs": ms, "lastClickAt": datetime(2020, 1, 1, tzinfo=UTC)}) == ms
    assert last_click_ms({"lastClickAt": moment}) == ms
    assert last_click_ms({"lastClickAt": "2026-01-02"}) == 0
    assert last_click_ms({}) == 0
    assert last_click_ms(None) == 0


def test_markers_live_as_long_as_a_failed_job_can_be_requeued(ledger: Ledger, database: Db) -> None:
    indexes = database["batches"].index_information().values()
    ttl = [index for index in indexes if index["key"] == [("at", 1)]]
    assert [index.get("expireAfterSeconds") for index in ttl] == [JOB_FAILURE_TTL + 86_400]
    unique = [
        index for index in database["clicks"].index_information().values() if index.get("unique")
    ]
    assert [index["key"] for index in unique] == [[("user", 1), ("key", 1)]]


def test_a_run_after_the_flush_applies_nothing_and_another_batchs_marker_changes_nothing(
    ledger: Ledger, database: Db
) -> None:
    first = clicks_for(2, 2, prefix="a")
    ledger.apply("b1", first)
    ledger.flush()  # b1's marker written, its marks removed: only the marker guards b1 now
    ledger.apply("b1", first)
    assert balances(database) == expected([first])
    # b2 was cut right after its insert; its run must apply it although b1 has a marker.
    second = clicks_for(2, 1, prefix="b")
    ledger._insert(
        [
            {
                "_id": click_id(c.user, c.key),
                "user": c.user,
                "key": c.key,
                "clicks": c.clicks,
                "reward": 2 * c.clicks,
                "batch": "b2",
                "acceptedAt": to_datetime(0),
                "appliedAt": datetime.now(UTC),
            }
            for c in second
        ]
    )
    ledger.apply("b2", second)
    assert balances(database) == expected([first, second])


def test_grouped_users_take_their_waiting_unmarks_along(database: Db) -> None:
    ledger = Ledger(database, reward_per_click=2, flush_batches=1, flush_seconds=3600)
    ledger.ensure_indexes()
    users = [f"u{n}" for n in range(5)]  # equal shares: one update_many for all of them
    ledger.apply("b1", [QueuedClick(user, "k1", 1, 0) for user in users])
    assert marks_of(database) == {user: ["b1"] for user in users}  # marker written, marks wait
    ledger.apply("b2", [QueuedClick(user, "k2", 1, 0) for user in users])
    assert marks_of(database) == {user: ["b2"] for user in users}
    ledger.apply("b2", [QueuedClick(user, "k2", 1, 0) for user in users])  # a repeat: refused
    assert balances(database) == {user: (4, 2) for user in users}
    ledger.flush()
    assert marks_of(database) == {user: [] for user in users}


def test_the_sweep_pages_through_balances_in_id_order(database: Db) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    for user in ("u3", "u0", "u4", "u1", "u2"):  # stored out of order
        database["balances"].insert_one({"_id": user, "applying": {"gone": to_ms(old)}})
    sweeper = Ledger(database, reward_per_click=2)
    pages, after = [], ""
    while True:
        step = sweeper.sweep(after, 3, datetime.now(UTC), lambda batches: set())
        pages.append(step)
        after = step.after
        if not after:
            break
    assert pages == [Swept("u2", 3), Swept("", 2)]
    assert marks_of(database) == {f"u{n}": [] for n in range(5)}


def test_the_sweep_keeps_marks_made_at_the_cutoff(database: Db) -> None:
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    at = to_ms(cutoff)
    database["balances"].insert_one(
        {"_id": "u1", "applying": {"at-cutoff": at, "just-before": at - 1}}
    )
    swept = Ledger(database, reward_per_click=2).sweep("", 10, cutoff, lambda batches: set())
    assert swept == Swept("", 1)
    assert marks_of(database) == {"u1": ["at-cutoff"]}


def test_settling_after_a_lost_race_for_a_new_user(ledger: Ledger, database: Db) -> None:
    """The second half of two batches creating one new user at once: the loser of the insert
    (E11000) settles by reading the balance and writing again only if its batch is not there."""
    ledger._settle("b1", "u1", [4, 2, 9])  # nobody won: it creates the balance
    assert balances(database) == {"u1": (4, 2)}
    ledger._settle("b1", "u1", [4, 2, 9])  # b1 already marked on u1: nothing
    assert balances(database) == {"u1": (4, 2)}
    database["batches"].insert_one({"_id": "b2", "at": datetime.now(UTC)})
    ledger._settle("b2", "u1", [4, 2, 9])  # b2 is wholly done (its marker): nothing
    assert balances(database) == {"u1": (4, 2)}
    ledger._settle("b3", "u1", [6, 3, 9])  # the winner made the balance; b3 is added to it
    assert balances(database) == {"u1": (10, 5)}
    assert marks_of(database) == {"u1": ["b1", "b3"]}


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is not UTC (nine hours ahead)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_do_not_depend_on_the_machines_time_zone(tokyo: None) -> None:
    ms = 1_767_323_045_678
    assert to_datetime(ms) == datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    assert to_datetime(ms).utcoffset() == timedelta(0)
    naive = datetime(2026, 1, 2, 3, 4, 5, 678_000)  # stored without a zone: UTC
    assert stored_ms(naive) == ms
    assert stored_ms("2026-01-02T03:04:05.678000") == ms


def test_markers_carry_the_time_their_ttl_counts_from(
    ledger: Ledger, database: Db, tokyo: None
) -> None:
    ledger.apply("b1", [QueuedClick("u1", "k1", 1, 0)])
    before = datetime.now(UTC)
    ledger.flush()
    marker = database["batches"].find_one({"_id": "b1"})
    assert marker is not None
    at = marker["at"] if marker["at"].tzinfo else marker["at"].replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_marker_already_written_does_not_stop_the_others(ledger: Ledger, database: Db) -> None:
    database["batches"].insert_one({"_id": "old", "at": datetime.now(UTC)})
    ledger.apply(
        "old", [QueuedClick("u1", "k1", 1, 0)]
    )  # a repeat whose marker exists: written first
    ledger.apply("new", [QueuedClick("u1", "k2", 1, 0)])
    ledger.flush()
    assert sorted(d["_id"] for d in database["batches"].find()) == ["new", "old"]


def test_a_refused_grouped_write_gives_back_the_marks_riding_on_it(database: Db) -> None:
    users = [f"u{n}" for n in range(5)]
    ledger = Ledger(database, reward_per_click=2, flush_batches=1, flush_seconds=3600)
    ledger.ensure_indexes()
    ledger.apply("b0", [QueuedClick(user, "k0", 1, 0) for user in users])  # flushed: b0 marks wait
    killed = Ledger(database, reward_per_click=2, flush_batches=1000, flush_seconds=3600)
    killed.apply("bx", [QueuedClick(user, "kx", 1, 0) for user in users])  # applied, never flushed
    ledger.apply("bx", [QueuedClick(user, "kx", 1, 0) for user in users])  # refused: all marked
    assert balances(database) == {user: (4, 2) for user in users}
    ledger.flush()
    assert marks_of(database) == {user: [] for user in users}


def test_settling_reads_the_users_own_balance_even_without_marks(
    ledger: Ledger, database: Db
) -> None:
    database["balances"].insert_many(
        [
            {"_id": "u1", "balance": 2, "clicks": 1, "applying": {"b5": 1}},
            {"_id": "u2", "balance": 5, "clicks": 5},  # written before marks existed
        ]
    )
    ledger._settle("b5", "u2", [4, 2, 9])  # b5 is marked on u1, not on u2: applied to u2
    assert balances(database) == {"u1": (2, 1), "u2": (9, 7)}


def test_clicks_record_when_they_were_applied(ledger: Ledger, database: Db, tokyo: None) -> None:
    before = datetime.now(UTC)
    ledger.apply("b1", [QueuedClick("u1", "k1", 1, 0)])
    doc = database["clicks"].find_one({"user": "u1", "key": "k1"})
    assert doc is not None
    at = doc["appliedAt"] if doc["appliedAt"].tzinfo else doc["appliedAt"].replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_duplicate_reports_the_reward_it_was_applied_with(ledger: Ledger) -> None:
    ledger.apply("b1", [QueuedClick("u1", "k", 3, 0)])
    # The same key much later (its record expired in Redis), now with one click.
    later = ledger.apply("b2", [QueuedClick("u1", "k", 1, 0)])
    assert [(o.duplicate, o.reward, o.balance) for o in later.outcomes] == [(True, 6, 6)]


def test_clicks_after_a_duplicate_in_the_same_batch_are_inserted(
    ledger: Ledger, database: Db
) -> None:
    ledger.apply("b1", [QueuedClick("u1", "old", 1, 0)])
    ledger.apply("b2", [QueuedClick("u1", "old", 1, 0), QueuedClick("u1", "new", 1, 0)])
    assert sorted(d["key"] for d in database["clicks"].find({"user": "u1"})) == ["new", "old"]
    assert balances(database) == {"u1": (4, 2)}


class FailingOnce:
    """A collection whose next ``update_many`` fails as if MongoDB went away."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def update_many(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            self.failing = False
            raise AutoReconnect("connection closed")
        return self.inner.update_many(*args, **kwargs)


def test_an_unmark_statement_that_fails_is_tried_again(ledger: Ledger, database: Db) -> None:
    ledger.apply("b1", [QueuedClick("u1", "k1", 1, 0)])
    ledger.balances = FailingOnce(ledger.balances)  # type: ignore[assignment]
    with pytest.raises(AutoReconnect):
        ledger.flush()  # the marker is written; removing the mark fails
    assert marks_of(database) == {"u1": ["b1"]}
    ledger.flush()
    assert marks_of(database) == {"u1": []}


@given(
    st.tuples(st.text(max_size=6), st.text(max_size=6)),
    st.tuples(st.text(max_size=6), st.text(max_size=6)),
)
def test_no_two_clicks_share_an_id(one: tuple[str, str], other: tuple[str, str]) -> None:
    """``:`` in a user id or a key cannot make two (user, key) pairs one document."""
    assume(one != other)
    assert click_id(*one) != click_id(*other)


def test_ids_of_users_and_keys_holding_the_separator() -> None:
    assert len({click_id("a:b", "c"), click_id("a", "b:c"), click_id("a:b:c", "")}) == 3


def test_what_mongodb_keeps_is_what_the_outcomes_said(ledger: Ledger, database: Db) -> None:
    """Click documents by (user, key) id, with the outcome's applied time; the batch's marker
    with each user's balance right after it: an answer given from MongoDB later is the same."""
    ledger.apply("b0", [QueuedClick("u1", "early", 2, 1_700_000_000_123)])
    result = ledger.apply(
        "b1",
        [
            QueuedClick("u1", "k:1", 1, 1_700_000_000_456),
            QueuedClick("u:2", "k", 3, 1_700_000_000_789),
        ],
    )
    ledger.flush()
    docs = {doc["_id"]: doc for doc in database["clicks"].find()}
    for outcome in result.outcomes:
        doc = docs[click_id(outcome.click.user, outcome.click.key)]
        assert (doc["user"], doc["key"], doc["batch"]) == (
            outcome.click.user,
            outcome.click.key,
            "b1",
        )
        assert to_ms(doc["appliedAt"]) == outcome.applied_ms
        assert to_ms(doc["acceptedAt"]) == outcome.click.accepted_ms
    marker = database["batches"].find_one({"_id": "b1"})
    assert marker is not None
    assert sorted(map(tuple, marker["balances"])) == sorted(
        {(o.click.user, o.balance) for o in result.outcomes}
    )
    assert {o.click.user: o.balance for o in result.outcomes} == {"u1": 6, "u:2": 6}


def test_a_duplicate_answers_with_the_original_document(ledger: Ledger, database: Db) -> None:
    first = ledger.apply("b1", [QueuedClick("u1", "k", 3, 1_700_000_000_000)])
    again = ledger.apply("b2", [QueuedClick("u1", "k", 3, 1_700_000_099_000)])
    (original,), (duplicate,) = first.outcomes, again.outcomes
    assert duplicate.duplicate
    assert (duplicate.reward, duplicate.applied_ms) == (original.reward, original.applied_ms)
    assert balances(database) == {"u1": (6, 3)}


def test_a_document_written_without_the_derived_id_is_still_found(
    ledger: Ledger, database: Db
) -> None:
    """Clicks stored before their ``_id`` came from (user, key) still make a repeat a duplicate
    (the unique index refuses it; the lookup falls back to the user and key fields)."""
    database["clicks"].insert_one(
        {
            "user": "u1",
            "key": "old",
            "clicks": 2,
            "reward": 4,
            "batch": "before",
            "acceptedAt": to_datetime(1_600_000_000_000),
            "appliedAt": to_datetime(1_600_000_000_500),
        }
    )
    result = ledger.apply(
        "b1", [QueuedClick("u1", "old", 2, 1_700_000_000_000), QueuedClick("u1", "new", 1, 0)]
    )
    old, new = result.outcomes
    assert (old.duplicate, old.reward, old.applied_ms) == (True, 4, 1_600_000_000_500)
    assert not new.duplicate
    assert balances(database) == {"u1": (2, 1)}


def test_dates_are_exact_to_the_millisecond() -> None:
    for ms in (0, 1, 999, 1_733_412_345_679, 1_700_000_000_001):
        assert to_ms(to_datetime(ms)) == ms
    assert to_ms(datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == 1_704_067_200_999


def test_every_run_of_a_batch_reports_the_balances_its_marker_holds(
    ledger: Ledger, database: Db
) -> None:
    """A job run again after its outcomes were recorded (its worker died before RQ knew) tells
    the balance right after the batch, not the one now: what Redis said, MongoDB says."""
    first = ledger.apply("b1", [QueuedClick("u1", "a", 1, 0), QueuedClick("u2", "a", 2, 0)])
    ledger.apply("b2", [QueuedClick("u1", "b", 3, 0)])
    again = ledger.apply("b1", [QueuedClick("u1", "a", 1, 0), QueuedClick("u2", "a", 2, 0)])
    assert [o.balance for o in again.outcomes] == [o.balance for o in first.outcomes] == [2, 4]
    assert again.users[0].balance == 8  # the status cache still gets the balance now
    assert balances(database) == {"u1": (8, 4), "u2": (4, 2)}


def test_concurrent_runs_report_the_same_balances(ledger: Ledger, database: Db) -> None:
    batch = clicks_for(10, 2)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(ledger.apply("b1", batch))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    marker = database["batches"].find_one({"_id": "b1"})
    assert marker is not None
    held = dict(map(tuple, marker["balances"]))
    for result in results:
        assert {o.click.user: o.balance for o in result.outcomes} == held
    assert balances(database) == expected([batch])
