"""Applying a batch of clicks to MongoDB exactly once in effect, without transactions.

A batch (one RQ job, id ``B``) may run any number of times, even concurrently, and be cut
off at any point; every step below is a single-document atomic write or is idempotent:

1. Insert the batch's click documents with ``insert_many(ordered=False)``. The unique index
   on (user, key) makes a click exist once. A click already there belongs to ``B`` (an earlier
   run inserted it: it is ours to apply) or to another batch (a duplicate: never applied here).
2. For each user with clicks of ``B``, one guarded upsert of the balance:
   ``{_id: user, "applying.B": {$exists: false}}`` -> ``$inc`` balance and clicks and
   ``$set: {"applying.B": <epoch ms>}``.
   The ``$inc`` and the mark that ``B`` was applied are one document write, so they happen
   together or not at all. If ``B`` is already marked, the guard does not match, the upsert
   collides with the existing ``_id`` (E11000) and nothing changes. Users with equal shares
   (under load: the clicks of one admission call) take one ``update_many`` with the same guard
   and ``_id: {$in: users}``; each document's update is still atomic, and the users it did not
   match (no balance yet, or already marked) are told apart by one read.
3. Insert the marker ``{_id: B, balances}`` into ``batches``: every user's share of ``B`` is
   applied; ``balances`` holds each of those users' balance right after ``B``. These are the
   balances the click outcomes report, in this run and in every later one (a later run finds
   the marker and reports its balances), so an answer given from MongoDB once the click's
   record left Redis is the same as the one given from Redis.
4. ``$unset`` ``applying.B`` on those users, so their ``applying`` maps stay small.

Step 4 is deferred and gathered: it costs no write of its own for a user who clicks again soon:
the ``$unset`` of their marks rides along with their next guarded update (a different field of
the same document, one atomic write). Users without such a write for ``flush_seconds`` (or
``flush_batches`` batches), and all of them at :meth:`Ledger.flush`, are unmarked by one
``update_many``. A mark that outlives its process is garbage, never an error: it only stops its
own batch from applying again, which is what it is for.

A process killed between a batch's step 2 and its step 4 leaves that batch's marks behind. If
its job had not completed, the job runs again and its run repeats steps 3 and 4; if it had, no
run will ever come, and :meth:`Ledger.sweep` (called by the workers' maintenance) removes marks
that are old enough and whose batch has a marker or can no longer run.

A later run finds its clicks already inserted (step 1 reports them as its own), sees the marker
when step 3 was reached and then only repeats step 4 (with the marker's balances); otherwise
the guard of step 2 skips every user already done. A user is unmarked (step 4) only after the
marker exists (step 3), so "not marked and no marker" always means "not applied". An E11000 in
step 2 can also come from two batches creating the same new user at once; it is told apart by
reading the document; in step 3 from two runs of one batch at once: the marker written first
stands, and both report its balances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crypto_mine.common.mongo import Document, primary
from crypto_mine.common.names import JOB_FAILURE_TTL, Collections

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
SETTLE_ATTEMPTS = 10
# Users with equal shares of a batch updated by one statement, from this many on.
GROUPED = 4


@dataclass(frozen=True, slots=True)
class QueuedClick:
    """One click of a batch, as the api accepted it."""

    user: str
    key: str
    clicks: int
    accepted_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    click: QueuedClick
    reward: int
    balance: int
    duplicate: bool  # the click was applied before, by another batch
    applied_ms: int  # when its document was written (by the batch that applied it)


@dataclass(frozen=True, slots=True)
class UserTotal:
    user: str
    balance: int
    clicks: int
    last_click_ms: int


@dataclass(frozen=True, slots=True)
class Swept:
    """One step of the sweep: where the next one starts ("" = from the first balance again),
    and how many marks it removed."""

    after: str
    removed: int


@dataclass(frozen=True, slots=True)
class Applied:
    outcomes: list[Outcome]
    users: list[UserTotal]
    fresh: int  # clicks of this batch applied now (not duplicates)


Pair = tuple[str, str]  # (user id, idempotency key)


def click_id(user: str, key: str) -> str:
    """The ``_id`` of the click document of (user, key): both in one string, never the same for
    two pairs (the user's length comes first, so a ``:`` inside either cannot move the split).

    Lookups by ``_id`` use the one index every MongoDB server keeps, and read one document.
    """
    return f"{len(user)}:{user}:{key}"


def clicks_filter(pairs: Iterable[Pair]) -> Document:
    """The click documents of ``pairs``, by ``_id``; their users too, the prefix of the
    collection's shard key in a sharded cluster (``mongo_shards.py``)."""
    pairs = set(pairs)
    return {
        "_id": {"$in": sorted(click_id(user, key) for user, key in pairs)},
        "user": {"$in": sorted({user for user, _ in pairs})},
    }


def one_batch(expected: int) -> int:
    """A cursor batch size that brings ``expected`` documents in the first reply: the server's
    default first batch is 101 documents, and every further one is a ``getMore`` round trip."""
    return max(expected, 1) + 1


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def to_datetime(ms: int) -> datetime:
    """Epoch ms as a date, exactly (MongoDB keeps dates to the millisecond)."""
    return EPOCH + ms * MILLISECOND


def to_ms(moment: datetime | None) -> int:
    """A date in epoch ms, exactly (floored to the millisecond, as MongoDB stores it)."""
    if not moment:
        return 0
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // MILLISECOND


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def last_click_ms(balance: Document | None) -> int:
    """A balance's last click in epoch ms: ``lastClickMs``, else the older ``lastClickAt`` date.

    Times on balances are integers: the local MongoDB server neither raises a date with
    ``$max`` nor keeps a date written by ``$set`` into an existing document (it stores text).
    """
    if not balance:
        return 0
    if isinstance(balance.get("lastClickMs"), int):
        return int(balance["lastClickMs"])
    last = balance.get("lastClickAt")
    return to_ms(last) if isinstance(last, datetime) else 0


def stored_ms(value: Any) -> int:
    """A stored time in epoch ms: epoch ms, a date, or a date's text (the local MongoDB server
    keeps some dates as text; marks of earlier versions are dates), 0 when none of these."""
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return to_ms(value)
    try:
        return to_ms(datetime.fromisoformat(str(value)).replace(tzinfo=UTC))
    except ValueError:
        return 0


class Ledger:
    def __init__(
        self,
        database: Database[Document],
        reward_per_click: int,
        flush_batches: int = 64,
        flush_seconds: float = 5.0,
    ) -> None:
        # Every read here decides a write: from the primary only (mongo.primary).
        self.clicks: Collection[Document] = primary(database[Collections.clicks])
        self.balances: Collection[Document] = primary(database[Collections.balances])
        self.batches: Collection[Document] = primary(database[Collections.batches])
        self.reward_per_click = reward_per_click
        self.flush_batches = flush_batches
        self.flush_seconds = flush_seconds
        # Batches finished since the last flush.
        self._finished = 0
        # Users still marked by batches whose markers are written: user -> those batches. Each
        # is unmarked by its next balance write, or by a flush if none comes for a flush period
        # (the users of ``_aged``: waiting at the last flush, and no write since).
        self._unmark: dict[str, set[str]] = {}
        self._aged: set[str] = set()
        self._since = 0.0
        self._lock = threading.Lock()

    def ensure_indexes(self) -> None:
        self.clicks.create_index([("user", ASCENDING), ("key", ASCENDING)], unique=True)
        # A marker matters while its job can still run: RQ keeps failed jobs for
        # JOB_FAILURE_TTL, after which they cannot be requeued.
        self.batches.create_index("at", expireAfterSeconds=JOB_FAILURE_TTL + 86_400)

    def apply(self, batch: str, clicks: list[QueuedClick]) -> Applied:
        now = to_datetime(now_ms())
        docs: list[Document] = [
            {
                "_id": click_id(click.user, click.key),
                "user": click.user,
                "key": click.key,
                "clicks": click.clicks,
                "reward": click.clicks * self.reward_per_click,
                "batch": batch,
                "acceptedAt": to_datetime(click.accepted_ms),
                "appliedAt": now,
            }
            for click in clicks
        ]
        existing = self._insert(docs)
        ours = [doc for doc in docs if (doc["user"], doc["key"]) not in existing]
        ours += [doc for doc in existing.values() if doc["batch"] == batch]
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for doc in ours:
            total = totals[doc["user"]]
            total[0] += doc["reward"]
            total[1] += doc["clicks"]
            total[2] = max(total[2], to_ms(doc["acceptedAt"]))
        marker = self._marker(batch) if existing else None  # a run before reached step 3
        if totals and marker is None:
            self._apply_balances(batch, totals)
        users = self._totals({click.user for click in clicks})
        after: dict[str, int] = {}
        if totals:
            after = marker if marker is not None else self._mark(batch, users, sorted(totals))
            self._finish(batch, sorted(totals))
        applied_ms = to_ms(now)
        outcomes = []
        for click in clicks:
            original = existing.get((click.user, click.key))
            duplicate = original is not None and original["batch"] != batch
            reward = original["reward"] if original else click.clicks * self.reward_per_click
            when = stored_ms(original["appliedAt"]) if original else applied_ms
            balance = after.get(click.user, users[click.user].balance)
            outcomes.append(Outcome(click, reward, balance, duplicate, when))
        fresh = sum(doc["clicks"] for doc in ours)
        return Applied(outcomes, list(users.values()), fresh)

    def _insert(self, docs: list[Document]) -> dict[tuple[str, str], Document]:
        """Insert the clicks; return the documents of those that already existed."""
        if not docs:
            return {}
        try:
            self.clicks.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            pairs = {(docs[e["index"]]["user"], docs[e["index"]]["key"]) for e in errors}
            found = self.clicks.find(clicks_filter(pairs), batch_size=one_batch(len(pairs)))
            existing = {(doc["user"], doc["key"]): doc for doc in found}
            older = pairs - set(existing)
            if older:  # documents written before their _id came from (user, key)
                found = self.clicks.find(
                    {
                        "user": {"$in": sorted({user for user, _ in older})},
                        "key": {"$in": sorted({key for _, key in older})},
                    },
                    batch_size=one_batch(len(older)),
                )
                existing.update(((doc["user"], doc["key"]), doc) for doc in found)
            return {pair: existing[pair] for pair in pairs}
        return {}

    def _done(self, batch: str) -> bool:
        return self.batches.find_one({"_id": batch}, {"_id": 1}) is not None

    def _marker(self, batch: str) -> dict[str, int] | None:
        """The balances ``batch``'s marker holds (``{}`` for a marker without them, written
        by an earlier version), or None when it has none yet."""
        doc = self.batches.find_one({"_id": batch}, {"balances": 1})
        if doc is None:
            return None
        return {str(user): int(balance) for user, balance in doc.get("balances") or []}

    def _mark(self, batch: str, users: dict[str, UserTotal], applied: list[str]) -> dict[str, int]:
        """Step 3: the marker, with the balances of the users ``batch`` applied to, as read
        after it; those of a marker written first by a concurrent run of ``batch`` stand.
        Balances as [user, balance] pairs: a user id is no safe field name (it may hold a ".")."""
        balances = {user: users[user].balance for user in applied}
        marker = {
            "_id": batch,
            "at": datetime.now(UTC),
            "balances": [[user, balance] for user, balance in balances.items()],
        }
        try:
            self.batches.insert_one(marker)
        except DuplicateKeyError:
            return self._marker(batch) or balances
        return balances

    def _guarded(
        self,
        batch: str,
        user: str | Document,
        total: list[int],
        unmark: frozenset[str] = frozenset(),
    ) -> tuple[Document, Document]:
        """The balance update of a user's share of ``batch`` (``user``: an ``_id`` or an ``_id``
        selector for users with equal shares), applied only where ``batch`` is not yet marked;
        ``unmark``: batches with markers whose marks go in the same write."""
        update: Document = {
            "$inc": {"balance": total[0], "clicks": total[1]},
            "$max": {"lastClickMs": total[2]},
            "$set": {f"applying.{batch}": now_ms()},
        }
        if unmark:
            update["$unset"] = {f"applying.{done}": "" for done in sorted(unmark)}
        return {"_id": user, f"applying.{batch}": {"$exists": False}}, update

    def _apply_balances(self, batch: str, totals: dict[str, list[int]]) -> None:
        """Users with equal shares (the clicks of one admission call, under load: hundreds)
        take one guarded ``update_many`` per share; the rest one bulk of guarded upserts."""
        users = sorted(totals)
        rides: dict[str, frozenset[str]] = {}
        with self._lock:  # marks waiting to be removed ride along with these writes
            for user in users:
                self._aged.discard(user)  # it writes: its marks ride along, no flush needed
                waiting = self._unmark.pop(user, None)
                if waiting and batch in waiting:  # never in the write that sets it
                    self._unmark[user] = {batch}
                    waiting.discard(batch)
                if waiting:
                    rides[user] = frozenset(waiting)
        shares: dict[tuple[int, ...], list[str]] = defaultdict(list)
        for user in users:
            shares[tuple(totals[user])].append(user)
        each: list[str] = []
        try:
            for share, members in shares.items():
                if len(members) < GROUPED:
                    each += members
                else:
                    each += self._apply_share(batch, list(share), members, rides)
        except Exception:
            self._wait_unmark(rides)  # whether they were removed is not known: again later
            raise
        if each:
            self._apply_each(batch, totals, sorted(each), rides)

    def _apply_share(
        self, batch: str, share: list[int], members: list[str], rides: dict[str, frozenset[str]]
    ) -> list[str]:
        """One statement for ``members``, who have equal shares of ``batch``. Returns those it
        could not update: users without a balance yet, to be upserted one by one. The marks
        riding along are those of every member (removing a mark of a batch whose marker exists
        is harmless on any user)."""
        unmark = frozenset().union(*(rides.get(user, frozenset()) for user in members))
        result = self.balances.update_many(*self._guarded(batch, {"$in": members}, share, unmark))
        if result.matched_count == len(members):
            for user in members:
                rides.pop(user, None)
            return []
        # Some members were already marked (a repeat) or have no balance: one read tells.
        marked = self._marked(batch, members)
        # Which members' marks rode along is not known: those marked give theirs back.
        self._wait_unmark(
            {user: rides.pop(user) for user in members if user in marked and user in rides}
        )
        return [user for user in members if user not in marked]

    def _apply_each(
        self,
        batch: str,
        totals: dict[str, list[int]],
        users: list[str],
        rides: dict[str, frozenset[str]],
    ) -> None:
        """One guarded upsert per user, in one unordered bulk."""
        try:
            self.balances.bulk_write(
                [
                    UpdateOne(
                        *self._guarded(batch, user, totals[user], rides.get(user, frozenset())),
                        upsert=True,
                    )
                    for user in users
                ],
                ordered=False,
            )
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            self._wait_unmark(
                {users[e["index"]]: rides.get(users[e["index"]], frozenset()) for e in errors}
            )
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            # A repeat of a batch whose users are already marked: one read tells them apart.
            refused = [users[e["index"]] for e in errors]
            marked = self._marked(batch, refused)
            for user in refused:
                if user not in marked:
                    self._settle(batch, user, totals[user])
        except Exception:
            self._wait_unmark(rides)  # only these users' rides are left: again later
            raise

    def _marked(self, batch: str, users: list[str]) -> set[str]:
        """Those of ``users`` whose balance is marked by ``batch``, in one read."""
        return {
            doc["_id"]
            for doc in self.balances.find(
                {"_id": {"$in": users}, f"applying.{batch}": {"$exists": True}},
                {"_id": 1},
                batch_size=one_batch(len(users)),
            )
        }

    def _wait_unmark(self, marks: dict[str, frozenset[str]]) -> None:
        with self._lock:
            for user, batches in marks.items():
                if batches:
                    self._unmark.setdefault(user, set()).update(batches)

    def _settle(self, batch: str, user: str, total: list[int]) -> None:
        """After an E11000: done if ``batch`` is marked on the user (or wholly done), else retry."""
        for _ in range(SETTLE_ATTEMPTS):
            doc = self.balances.find_one({"_id": user}, {"applying": 1})
            if (doc and batch in doc.get("applying", {})) or self._done(batch):
                return
            try:
                self.balances.update_one(*self._guarded(batch, user, total), upsert=True)
            except DuplicateKeyError:
                continue
            return
        raise RuntimeError(f"balance of user {user!r} for batch {batch!r} did not settle")

    def _finish(self, batch: str, users: list[str]) -> None:
        """Step 3 is done: the users' marks of ``batch`` wait to be removed (step 4), by their
        next balance write or, after a flush period without one, by a flush."""
        self._wait_unmark({user: frozenset({batch}) for user in users})
        with self._lock:
            if not self._finished:
                self._since = time.monotonic()
            self._finished += 1
            due = (
                self._finished >= self.flush_batches
                or time.monotonic() - self._since >= self.flush_seconds
            )
        if due:
            self._flush(final=False)

    def flush(self) -> None:
        """Everything deferred: the marks of every finished batch are removed."""
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        """Users whose marks waited a whole flush period for a balance write to ride along,
        or all of them at the ``final`` flush, are unmarked by one statement."""
        with self._lock:
            self._finished = 0
            due = self._take_unmark(set(self._unmark) if final else self._aged)
            self._aged = set(self._unmark)
        if not due:
            return
        try:
            self.balances.update_many(
                {"_id": {"$in": sorted(due)}},
                {"$unset": {f"applying.{batch}": "" for batch in set().union(*due.values())}},
            )
        except Exception:
            self._wait_unmark(due)
            raise

    def _take_unmark(self, users: set[str]) -> dict[str, frozenset[str]]:
        """Under the lock: the waiting marks of ``users``, no longer waiting."""
        return {
            user: frozenset(self._unmark.pop(user))
            for user in sorted(users)
            if user in self._unmark
        }

    def sweep(
        self,
        after: str,
        limit: int,
        older_than: datetime,
        runnable: Callable[[list[str]], set[str]],
        mine: Callable[[str], bool] = lambda _: True,
    ) -> Swept:
        """Unmark, on the ``limit`` balances after ``_id`` ``after``, the batches marked before
        ``older_than`` that will never apply again: those with a marker, and those that
        ``runnable`` (asked about the others) does not name. One read, one marker read, one
        write at most; the marks of a batch that may still run are kept. Only the users
        ``mine`` names are unmarked: those whose batches ``runnable`` knows (one shard's)."""
        docs = list(
            self.balances.find(
                {"_id": {"$gt": after}},
                {"applying": 1},
                sort=[("_id", ASCENDING)],
                limit=limit,
                batch_size=one_batch(limit),
            )
        )
        cutoff = to_ms(older_than)
        old = {
            doc["_id"]: [batch for batch, at in doc["applying"].items() if stored_ms(at) < cutoff]
            for doc in docs
            if doc.get("applying") and mine(str(doc["_id"]))
        }
        candidates = sorted({batch for batches in old.values() for batch in batches})
        removed = 0
        if candidates:
            done = {
                doc["_id"]
                for doc in self.batches.find(
                    {"_id": {"$in": candidates}}, {"_id": 1}, batch_size=one_batch(len(candidates))
                )
            }
            alive = runnable([batch for batch in candidates if batch not in done])
            updates = []
            for user, batches in old.items():
                gone = [batch for batch in batches if batch not in alive]
                if gone:
                    removed += len(gone)
                    unset = {f"applying.{batch}": "" for batch in gone}
                    updates.append(UpdateOne({"_id": user}, {"$unset": unset}))
            if updates:
                self.balances.bulk_write(updates, ordered=False)
        return Swept(str(docs[-1]["_id"]) if len(docs) == limit else "", removed)

    def _totals(self, users: set[str]) -> dict[str, UserTotal]:
        found = {
            doc["_id"]: doc
            for doc in self.balances.find(
                {"_id": {"$in": sorted(users)}},
                batch_size=one_batch(len(users)),
            )
        }
        return {
            user: UserTotal(
                user,
                int(found.get(user, {}).get("balance", 0)),
                int(found.get(user, {}).get("clicks", 0)),
                last_click_ms(found.get(user)),
            )
            for user in sorted(users)
        }
