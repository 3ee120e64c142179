"""A batch from its payload to its recorded outcome: parsing, poison, failures, retries."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import pytest
import redis
from pymongo.errors import AutoReconnect, OperationFailure
from redis.exceptions import ConnectionError as RedisConnectionError

from crypto_mine.common.metrics import REDIS_LATENCY
from crypto_mine.common.names import Keys, Metrics
from crypto_mine.common.retry import Backoff
from crypto_mine.pipeline.batches import MAX_CLICKS, BatchRunner, parse
from crypto_mine.pipeline.events import EventSettings
from crypto_mine.pipeline.failures import PoisonJob, TransientFailure
from crypto_mine.pipeline.ledger import Applied, Ledger, QueuedClick
from crypto_mine.pipeline.outcomes import Failure, OutcomeRecorder


def item(user: Any = "u1", key: Any = "k", clicks: Any = 1, at: Any = 7) -> dict[str, Any]:
    return {"user": user, "key": key, "clicks": clicks, "at": at}


def test_valid_clicks_are_parsed_in_order() -> None:
    clicks, failures = parse([item(key="a", clicks=1), item(key="b", clicks=MAX_CLICKS, at=9)])
    assert clicks == [QueuedClick("u1", "a", 1, 7), QueuedClick("u1", "b", MAX_CLICKS, 9)]
    assert failures == []


@pytest.mark.parametrize("count", [0, -1, MAX_CLICKS + 1, True, "1", 1.0, None])
def test_an_invalid_count_fails_that_click_alone(count: Any) -> None:
    clicks, failures = parse([item(key="bad", clicks=count), item(key="good")])
    assert clicks == [QueuedClick("u1", "good", 1, 7)]
    kept = count if isinstance(count, int) else 0
    assert failures == [Failure(QueuedClick("u1", "bad", kept, 7), "invalid_click")]


def test_a_time_that_is_no_integer_reads_as_zero() -> None:
    clicks, _ = parse([item(at="yesterday"), item(key="k2", at=None)])
    assert [click.accepted_ms for click in clicks] == [0, 0]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"user": "u1"}, "expected a list of clicks, got dict"),
        (None, "expected a list of clicks, got NoneType"),
        (["u1"], "expected click objects, got 'u1'"),
        ([item(user="")], "click without user or key"),
        ([item(key="")], "click without user or key"),
        ([{"key": "k", "clicks": 1}], "click without user or key"),
        ([item(user=7)], "click without user or key"),
        ([item(), {"user": "u1", "key": ["k"]}], "click without user or key"),
    ],
)
def test_a_payload_that_names_no_clicks_is_poison(payload: Any, detail: str) -> None:
    with pytest.raises(PoisonJob, match=detail) as caught:
        parse(payload)
    assert caught.value.error_code == "invalid_payload"


class FailingLedger(Ledger):
    """A ledger whose apply fails with ``error`` the first ``times`` calls."""

    def __init__(self, ledger: Ledger, error: BaseException, times: int = 1000) -> None:
        super().__init__(ledger.clicks.database, ledger.reward_per_click)
        self.error = error
        self.times = times
        self.calls = 0

    def apply(self, batch: str, clicks: list[QueuedClick]) -> Applied:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return super().apply(batch, clicks)


class Timeout(BaseException):  # the shape of RQ's job timeout: not an Exception
    pass


def queued(client: redis.Redis, key: str) -> dict[str, Any]:
    client.hset(Keys.click("u1", key), mapping={"s": "queued", "f": "x", "n": 1, "t": 7})
    client.expire(Keys.click("u1", key), 3600)
    return item(key=key)


def runner_of(redis_client: redis.Redis, ledger: Ledger, budget: float = 1.0) -> BatchRunner:
    recorder = OutcomeRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    return BatchRunner(ledger, recorder, Backoff(0.01, 0.02), budget, passthrough=(Timeout,))


def test_a_batch_result_counts_fresh_duplicates_and_users(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    runner = runner_of(redis_client, ledger)
    first = runner.run("b1", [queued(redis_client, "a"), item(user="u2", key="c", clicks=3)])
    assert (first.clicks, first.fresh, first.duplicates, first.users) == (2, 4, 0, 2)
    again = runner.run("b2", [queued(redis_client, "a"), item(key="bad", clicks=0)])
    assert (again.clicks, again.fresh, again.duplicates, again.users) == (1, 0, 1, 1)
    assert again.failures == [Failure(QueuedClick("u1", "bad", 0, 7), "invalid_click")]
    nothing = runner.run("b3", [item(key="bad2", clicks=0)])
    assert (nothing.applied, nothing.fresh, nothing.duplicates, nothing.users) == (None, 0, 0, 0)


def test_poison_records_its_clicks_as_failed_and_counts_what_the_depth_lost(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    redis_client.hset(Keys.queue_jobs, "b1", 3)
    redis_client.set(Keys.queue_depth, 5)
    with pytest.raises(PoisonJob) as caught:
        runner_of(redis_client, ledger).run("b1", "not a list")
    assert caught.value.clicks == 3
    assert redis_client.get(Keys.queue_depth) == "2"


@pytest.mark.parametrize(
    ("error", "code"),
    [(ValueError("no such thing"), "internal_error"), (OperationFailure("bad"), "mongodb_error")],
)
def test_a_ledger_error_that_is_not_transient_fails_every_click_once(
    redis_client: redis.Redis,
    ledger: Ledger,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: str,
) -> None:
    redis_client.hset(Keys.queue_jobs, "b1", 2)
    redis_client.set(Keys.queue_depth, 2)
    broken = FailingLedger(ledger, error)
    payload = [queued(redis_client, "a"), queued(redis_client, "z")]
    payload[1]["clicks"] = 0
    recorder = FlakyRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    runner = BatchRunner(broken, recorder, Backoff(0.01, 0.02), 1.0)
    with caplog.at_level(logging.WARNING), pytest.raises(PoisonJob) as caught:
        runner.run("b1", payload)
    assert str(caught.value) == f"{code}: {error}"
    assert broken.calls == 1, "not retried"
    assert caught.value.clicks == 2
    assert caught.value.__cause__ is error
    for key, recorded in (("a", code), ("z", "invalid_click")):
        record = redis_client.hgetall(Keys.click("u1", key))
        assert (record["s"], record["e"]) == ("failed", recorded)
    messages = [r.getMessage() for r in caplog.records]
    assert f"batch b1 cannot be applied ({code})" in messages
    assert [m[:35] for m in messages if "failed (" in m] == ["redis failed (ConnectionError); ret"]


def completions() -> tuple[float, float]:
    """How many outcome recordings the latency histogram counted, and their total ms."""
    found = {
        sample.name: sample.value
        for metric in REDIS_LATENCY.collect()
        for sample in metric.samples
        if sample.labels.get("operation") == "complete"
    }
    return found.get(f"{Metrics.redis_latency}_count", 0.0), found.get(
        f"{Metrics.redis_latency}_sum", 0.0
    )


def test_recording_the_outcome_is_timed_in_milliseconds(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    runner = runner_of(redis_client, ledger)
    runner.run("b0", [queued(redis_client, "warm")])
    count, total = completions()
    began = time.perf_counter()
    runner.run("b1", [queued(redis_client, "a")])
    elapsed_ms = 1000 * (time.perf_counter() - began)
    after_count, after_total = completions()
    assert after_count == count + 1
    assert 0 < after_total - total <= elapsed_ms


def test_a_transient_error_is_retried_within_the_budget(
    redis_client: redis.Redis, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FailingLedger(ledger, AutoReconnect("primary stepped down"), times=2)
    with caplog.at_level(logging.WARNING, "crypto_mine.common.retry"):
        result = runner_of(redis_client, flaky).run("b1", [queued(redis_client, "a")])
    assert flaky.calls == 3
    assert result.fresh == 1
    assert redis_client.hget(Keys.click("u1", "a"), "s") == "completed"
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2
    assert all(m.startswith("mongodb failed (AutoReconnect); retrying in") for m in retries)


class FlakyRecorder(OutcomeRecorder):
    """OutcomeRecorder whose first claim and first record find Redis away."""

    claims = 0
    records = 0

    def claim(self, job_id: str) -> list[Any]:
        self.claims += 1
        if self.claims == 1:
            raise RedisConnectionError("Connection refused")
        return super().claim(job_id)

    def record(self, job_id: str, applied: Applied | None, failures: list[Failure]) -> int:
        self.records += 1
        if self.records == 1:
            raise RedisConnectionError("Connection refused")
        return super().record(job_id, applied, failures)


class CountingLedger(Ledger):
    """A ledger whose first index creation finds MongoDB away, counting the creations."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.clicks.database, ledger.reward_per_click)
        self.index_calls = 0

    def ensure_indexes(self) -> None:
        self.index_calls += 1
        if self.index_calls == 1:
            raise AutoReconnect("not yet")
        super().ensure_indexes()


def test_indexes_are_made_once_per_applier_retrying_mongodb(
    redis_client: redis.Redis, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingLedger(ledger)
    runner = runner_of(redis_client, counting)
    with caplog.at_level(logging.WARNING, "crypto_mine.common.retry"):
        runner.run("b1", [queued(redis_client, "a")])
        runner.run("b2", [queued(redis_client, "b")])
    assert counting.index_calls == 2  # one refused, one made; none for the second batch
    assert [r.getMessage()[:32] for r in caplog.records] == ["mongodb failed (AutoReconnect); "]


def test_poison_is_recorded_retrying_redis(
    redis_client: redis.Redis, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.hset(Keys.queue_jobs, "b1", 4)
    recorder = FlakyRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    runner = BatchRunner(ledger, recorder, Backoff(0.01, 0.02), 1.0)
    with (
        caplog.at_level(logging.WARNING, "crypto_mine.common.retry"),
        pytest.raises(PoisonJob) as caught,
    ):
        runner.run("b1", {"not": "a list"})
    assert (recorder.records, caught.value.clicks) == (2, 4)
    assert [r.getMessage()[:35] for r in caplog.records] == ["redis failed (ConnectionError); ret"]


def test_a_job_claims_its_clicks_from_redis_retrying_it_too(
    redis_client: redis.Redis, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.rpush(Keys.batch("j1"), orjson.dumps(queued(redis_client, "a")))
    recorder = FlakyRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    runner = BatchRunner(ledger, recorder, Backoff(0.01, 0.02), 1.0)
    with caplog.at_level(logging.WARNING, "crypto_mine.common.retry"):
        result = runner.run_job("j1")
    assert (recorder.claims, recorder.records, result.fresh) == (2, 2, 1)
    assert not redis_client.exists(Keys.batch("j1")), "the job's click list is gone"
    assert redis_client.exists(Keys.user_status("u1")), "the user's status is cached"
    applied_ms = int(redis_client.hget(Keys.click("u1", "a"), "a") or 0)
    assert abs(applied_ms - time.time() * 1000) < 60_000
    assert [r.getMessage()[:35] for r in caplog.records] == [
        "redis failed (ConnectionError); ret"
    ] * 2
    assert redis_client.hget(Keys.click("u1", "a"), "s") == "completed"


def test_a_transient_error_past_the_budget_leaves_the_clicks_queued(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    down = FailingLedger(ledger, AutoReconnect("no primary"))
    with pytest.raises(TransientFailure) as caught:
        runner_of(redis_client, down, budget=0.1).run("b1", [queued(redis_client, "a")])
    assert caught.value.error_code == "mongodb_unavailable"
    assert str(caught.value) == "mongodb_unavailable: no primary"
    assert isinstance(caught.value.__cause__, AutoReconnect)
    assert down.calls >= 2
    assert redis_client.hget(Keys.click("u1", "a"), "s") == "queued"


def test_a_passthrough_exception_is_neither_retried_nor_poison(
    redis_client: redis.Redis, ledger: Ledger
) -> None:
    stopped = FailingLedger(ledger, Timeout())
    with pytest.raises(Timeout):
        runner_of(redis_client, stopped).run("b1", [queued(redis_client, "a")])
    assert stopped.calls == 1
    assert redis_client.hget(Keys.click("u1", "a"), "s") == "queued"


def test_claiming_a_job_closes_it_to_new_clicks_only_if_it_is_the_open_one(
    redis_client: redis.Redis,
) -> None:
    recorder = OutcomeRecorder(redis_client, 300, EventSettings(maxlen=100, ttl_seconds=120))
    redis_client.set(Keys.open_job, "j2")
    redis_client.rpush(Keys.batch("j1"), b'{"user": "u1"}', b"not json")
    assert recorder.claim("j1") == [{"user": "u1"}, "not json"]  # the parser rejects it
    assert redis_client.get(Keys.open_job) == "j2", "another job is still open"
    assert recorder.claim("j2") == []
    assert not redis_client.exists(Keys.open_job)
