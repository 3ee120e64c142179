"""The outcome writer's event streams: one event per outcome, whatever repeats, per user only."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from crypto_mine.common.names import KEY_TAG, Keys
from crypto_mine.common.retry import Backoff
from crypto_mine.pipeline import events
from crypto_mine.pipeline.batches import BatchRunner
from crypto_mine.pipeline.events import EventSettings
from crypto_mine.pipeline.failures import PoisonJob
from crypto_mine.pipeline.ledger import Ledger
from crypto_mine.pipeline.outcomes import OutcomeRecorder


def queued(client: redis.Redis, user: str, key: str, clicks: int = 1) -> dict[str, Any]:
    """The click record admission would have written, and the job payload entry."""
    client.hset(Keys.click(user, key), mapping={"s": "queued", "n": clicks, "t": 7, "j": "job"})
    client.expire(Keys.click(user, key), 3600)
    return {"user": user, "key": key, "clicks": clicks, "at": 7}


def entries(client: redis.Redis, user: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    raw: list[tuple[str, dict[str, str]]] = client.xrange(Keys.events(user))  # type: ignore[assignment]
    for _, fields in raw:
        parsed = events.payload(user, fields)
        assert parsed is not None
        found.append(parsed)
    return found


@pytest.fixture
def runner(redis_client: redis.Redis, ledger: Ledger) -> BatchRunner:
    recorder = OutcomeRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    return BatchRunner(ledger, recorder, Backoff(0.01, 0.02), 1.0)


def test_each_outcome_is_one_event_and_repeats_add_none(
    runner: BatchRunner, redis_client: redis.Redis
) -> None:
    batch = [queued(redis_client, "u1", "a", 2), queued(redis_client, "u1", "b")]
    batch.append(queued(redis_client, "u2", "c"))
    batch.append({"user": "u1", "key": "bad", "clicks": 0, "at": 7})
    queued(redis_client, "u1", "bad")
    for _ in range(3):  # a crashed worker's job, run again and again
        runner.run("job-1", batch)
    mine = entries(redis_client, "u1")
    kinds = [kind for kind, _ in mine]
    assert kinds == ["click", "click", "click", "balance"]
    clicks = {body["idempotencyKey"]: body for kind, body in mine if kind == "click"}
    assert clicks["a"]["status"] == "completed"
    assert clicks["a"]["result"]["reward"] == 4  # the ledger fixture pays 2 a click
    assert clicks["a"]["result"]["balance"] == 6
    assert clicks["b"]["clicks"] == 1
    assert clicks["bad"]["status"] == "failed"
    assert clicks["bad"]["error"] == {"code": "invalid_click"}
    balance = mine[-1][1]
    assert (balance["userId"], balance["balance"], balance["clicks"]) == ("u1", 6, 3)
    theirs = entries(redis_client, "u2")
    assert [body.get("idempotencyKey") for _, body in theirs] == ["c", None]
    assert 60 < redis_client.ttl(Keys.events("u1")) <= 120


def test_a_duplicate_seen_by_a_later_batch_is_one_more_event(
    runner: BatchRunner, redis_client: redis.Redis
) -> None:
    runner.run("job-1", [queued(redis_client, "u1", "a")])
    redis_client.delete(Keys.click("u1", "a"))  # its record expired; the key came back
    runner.run("job-2", [queued(redis_client, "u1", "a")])
    clicks = [body for kind, body in entries(redis_client, "u1") if kind == "click"]
    assert [c["result"]["duplicate"] for c in clicks] == [False, True]
    assert [c["result"]["balance"] for c in clicks] == [2, 2]


def test_expired_records_and_poison_emit_nothing(
    runner: BatchRunner, redis_client: redis.Redis
) -> None:
    runner.run("job-1", [{"user": "u1", "key": "gone", "clicks": 1, "at": 7}])
    assert entries(redis_client, "u1") == []  # no record: no outcome to tell about
    with pytest.raises(PoisonJob):
        runner.run("job-2", "not a list")
    assert redis_client.keys(f"{KEY_TAG}:events:*") == []


def test_streams_are_trimmed(redis_client: redis.Redis, ledger: Ledger) -> None:
    recorder = OutcomeRecorder(redis_client, 300, EventSettings(maxlen=10, ttl_seconds=120))
    runner = BatchRunner(ledger, recorder, Backoff(0.01, 0.02), 1.0)
    for job in range(120):
        runner.run(f"job-{job}", [queued(redis_client, "u1", f"k{job}")])
    # MAXLEN ~ trims whole nodes of the stream (100 entries): at least 10 stay, not all 240.
    assert 10 <= redis_client.xlen(Keys.events("u1")) < 240
    last = entries(redis_client, "u1")[-1][1]
    assert last["balance"] == 240


def test_events_older_than_the_stream_ttl_are_trimmed(
    runner: BatchRunner, redis_client: redis.Redis
) -> None:
    stream = Keys.events("u1")
    a_minute_ago = int(time.time() * 1000) - 60_000  # within the fixture's 120 s
    # Events of long ago, then of a minute ago (ids are milliseconds since the epoch).
    for at in [*range(1, 201), *range(a_minute_ago, a_minute_ago + 50)]:
        redis_client.xadd(stream, {"ev": "balance", "clicks": 1, "balance": 2, "last": 3}, id=at)
    runner.run("job-1", [queued(redis_client, "u1", "a")])
    raw: list[tuple[str, Any]] = redis_client.xrange(stream)  # type: ignore[assignment]
    ids = [int(entry_id.split("-")[0]) for entry_id, _ in raw]
    # Whole nodes go (MINID ~): at most the old events sharing a node with newer ones stay.
    assert len([at for at in ids if at <= 200]) < 100, ids
    assert len([at for at in ids if a_minute_ago <= at < a_minute_ago + 50]) == 50, ids
    assert [kind for kind, _ in entries(redis_client, "u1")][-2:] == ["click", "balance"]


def test_a_short_stream_loses_its_old_events_too(
    runner: BatchRunner, redis_client: redis.Redis
) -> None:
    """Fewer events than MINING_EVENTS_MAXLEN: only their age trims them."""
    stream = Keys.events("u1")
    recent = int(time.time() * 1000) - 1000
    for at in [*range(1, 61), *range(recent, recent + 10)]:  # 70 events, below maxlen (100)
        redis_client.xadd(stream, {"ev": "balance", "clicks": 1, "balance": 2, "last": 3}, id=at)
    runner.run("job-1", [queued(redis_client, "u1", "a")])
    raw: list[tuple[str, Any]] = redis_client.xrange(stream)  # type: ignore[assignment]
    ids = [int(entry_id.split("-")[0]) for entry_id, _ in raw]
    # Nodes of 512 bytes hold a dozen of these: the old ones are gone but for one node's worth.
    assert len([at for at in ids if at <= 60]) <= 20, ids
    assert len([at for at in ids if recent <= at < recent + 10]) == 10, ids


def test_a_completed_record_keeps_what_answers_need_for_the_window(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    """The job id goes (and the fingerprint older versions wrote), ``d`` only for duplicates;
    the record lives for the window from completion; a failed one keeps its TTL."""
    recorder = OutcomeRecorder(redis_client, 300, window_seconds=90)
    runner = BatchRunner(ledger, recorder, Backoff(0.01, 0.02), 1.0)
    batch = [queued(redis_client, "u1", "a", 2), {"user": "u1", "key": "bad", "clicks": 0}]
    queued(redis_client, "u1", "bad")
    redis_client.hset(Keys.click("u1", "a"), "f", "0123456789abcdef01234567")
    runner.run("job-1", batch)
    record = redis_client.hgetall(Keys.click("u1", "a"))
    assert set(record) == {"s", "n", "t", "r", "b", "a"}
    assert (record["s"], record["n"], record["r"], record["b"]) == ("completed", "2", "4", "4")
    assert 80 < redis_client.ttl(Keys.click("u1", "a")) <= 90
    assert redis_client.hget(Keys.click("u1", "bad"), "s") == "failed"
    assert redis_client.ttl(Keys.click("u1", "bad")) > 3000
    # A repeated run (a crashed worker's job) changes neither the record nor its lifetime.
    redis_client.expire(Keys.click("u1", "a"), 30)
    runner.run("job-1", batch)
    assert redis_client.hgetall(Keys.click("u1", "a")) == record
    assert redis_client.ttl(Keys.click("u1", "a")) <= 30
