"""After the chaos: drain the queue, then hold MongoDB and Redis against the clients' ledger."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from pymongo import MongoClient

from crypto_mine.common.names import Collections, ShardKeys, shard_of
from crypto_mine.pipeline.ledger import click_id
from crypto_mine.pipeline.queue_stats import ShardQueueKeys
from tests.support.stack import DATABASE

from .load import Ledger


class MongoAddress(Protocol):
    @property
    def uri(self) -> str: ...


class Stores(Protocol):
    """Where a run's clicks end up: its Redis and MongoDB (processes, containers or pods)."""

    @property
    def mongo(self) -> MongoAddress: ...

    def redis_client(self, shard: int = 0) -> redis.Redis: ...

    @property
    def shards(self) -> int: ...

    def dead_letters(self) -> int: ...


@dataclass
class Verdict:
    accepted: int = 0
    lost: int = 0  # clicks accepted (200/202) and not applied
    doubled: int = 0  # clicks applied more than once, or applied without being accepted
    not_completed: int = 0  # accepted clicks whose status never became "completed"
    users: int = 0
    duplicate_user_ids: int = 0
    dead_letters: int = 0
    leftover_marks: int = 0
    problems: list[str] = field(default_factory=list)


def drained(stack: Stores) -> bool:
    for shard in range(stack.shards):
        keys, queue = ShardKeys(shard), ShardQueueKeys(shard)
        with stack.redis_client(shard) as client:
            depth = int(client.get(keys.queue_depth) or 0)
            if depth or client.llen(queue.queue) or client.zcard(queue.started):
                return False
    return True


def wait_drained(stack: Stores, timeout: float) -> float:
    """Seconds until the queue held nothing (raises TimeoutError after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if drained(stack):
                return time.monotonic() - started
        except Exception:  # noqa: S110 - Redis may still be loading
            pass
        time.sleep(0.5)
    states = []
    for shard in range(stack.shards):
        keys, queue = ShardKeys(shard), ShardQueueKeys(shard)
        with stack.redis_client(shard) as client:
            states.append(
                {
                    "depth": client.get(keys.queue_depth),
                    "queued jobs": client.llen(queue.queue),
                    "started jobs": client.zcard(queue.started),
                    "intermediate jobs": client.llen(queue.queue + ":intermediate"),
                    "cleaning lock ttl": client.ttl("rq:clean_registries:" + queue.name),
                }
            )
    raise TimeoutError(f"queue not drained after {timeout:.0f}s: {states}")


def completed_records(stack: Stores, keys: list[tuple[str, str]]) -> int:
    """Clicks whose record says completed, or, once it left Redis after the window, whose
    document MongoDB holds (what the api then answers with)."""
    gone: list[tuple[str, str]] = []
    done = 0
    for shard in range(stack.shards):
        names = ShardKeys(shard)
        mine = [(user, key) for user, key in keys if shard_of(user, stack.shards) == shard]
        with stack.redis_client(shard) as client:
            for start in range(0, len(mine), 1000):
                chunk = mine[start : start + 1000]
                pipe = client.pipeline(transaction=False)
                for user, key in chunk:
                    pipe.hget(names.click(user, key), "s")
                states = pipe.execute()
                done += sum(state == "completed" for state in states)
                gone += [pair for pair, state in zip(chunk, states, strict=True) if state is None]
    mongo: MongoClient[dict[str, Any]] = MongoClient(stack.mongo.uri)
    try:
        clicks = mongo[DATABASE][Collections.clicks]
        for start in range(0, len(gone), 1000):
            ids = [click_id(user, key) for user, key in gone[start : start + 1000]]
            done += clicks.count_documents({"_id": {"$in": ids}})
    finally:
        mongo.close()
    return done


def verify(stack: Stores, ledger: Ledger, reward: int) -> Verdict:
    verdict = Verdict(accepted=len(ledger.accepted), dead_letters=stack.dead_letters())
    accepted = list(ledger.accepted)
    verdict.not_completed = len(accepted) - completed_records(stack, accepted)

    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo.uri, tz_aware=True)
    try:
        database = client[DATABASE]
        stored = Counter(
            (doc["user"], doc["key"])
            for doc in database[Collections.clicks].find({}, {"user": 1, "key": 1})
        )
        balances = {doc["_id"]: doc for doc in database[Collections.balances].find()}
        users = {doc["usernameKey"]: str(doc["_id"]) for doc in database[Collections.users].find()}
    finally:
        client.close()

    for pair, count in stored.items():
        if count > 1:
            verdict.doubled += (count - 1) * ledger.accepted.get(pair, 1)
            verdict.problems.append(f"click {pair} stored {count} times")
        if pair not in ledger.accepted:
            verdict.doubled += 1
            verdict.problems.append(f"click {pair} applied but never accepted")
    for pair, clicks in ledger.accepted.items():
        if pair not in stored:
            verdict.lost += clicks
            verdict.problems.append(f"click {pair} accepted but not applied")

    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (user, _), clicks in ledger.accepted.items():
        expected[user][0] += clicks * reward
        expected[user][1] += clicks
    for user in set(expected) | set(balances):
        want_balance, want_clicks = expected.get(user, [0, 0])
        doc = balances.get(user, {})
        have_balance, have_clicks = int(doc.get("balance", 0)), int(doc.get("clicks", 0))
        if (have_balance, have_clicks) != (want_balance, want_clicks):
            verdict.problems.append(
                f"user {user}: balance {have_balance} clicks {have_clicks}, "
                f"expected {want_balance} and {want_clicks}"
            )
            verdict.lost += max(0, want_clicks - have_clicks)
            verdict.doubled += max(0, have_clicks - want_clicks)
        # Marks of batches whose process died before unmarking stay behind until the workers'
        # sweep removes them (once older than MARK_AGE, longer than a run); they only stop
        # their own batch from applying again, so they are counted, not failed.
        verdict.leftover_marks += len(doc.get("applying") or {})

    ids = list(ledger.users.values())
    verdict.users = len(ids)
    verdict.duplicate_user_ids = len(ids) - len(set(ids))
    for username, user_id in ledger.users.items():
        if users.get(username.lower()) != user_id:
            verdict.problems.append(f"user {username}: id {user_id} not the stored one")
    if len(users) != len(ledger.users):
        verdict.problems.append(f"{len(users)} accounts stored, {len(ledger.users)} signed up")
    return verdict
