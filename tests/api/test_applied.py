"""Beyond the Redis window: MongoDB answers repeats and status reads, and never holds clicks up.

Clicks are applied here by the worker's own ledger and outcome script (in-process, against the
same Redis and MongoDB servers), then their records leave Redis as the window would make them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from crypto_mine.api.admission.applied import SKIP_SECONDS, AppliedClicks
from crypto_mine.common.names import Keys
from crypto_mine.common.retry import Backoff
from crypto_mine.pipeline.applied_records import records
from crypto_mine.pipeline.batches import BatchRunner
from crypto_mine.pipeline.ledger import Ledger, QueuedClick, clicks_filter
from crypto_mine.pipeline.outcomes import OutcomeRecorder
from devstack.servers import MongoServer, RedisServer
from tests.support.api import Api

pytestmark = pytest.mark.anyio

Db = Database[dict[str, Any]]


@pytest.fixture
def database(mongo_server: MongoServer, mongo_db: str) -> Iterator[Db]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[mongo_db]
    client.close()


@pytest.fixture
async def api(start_api: Any) -> Api:
    """The api with a lookup bound that a busy machine's MongoDB meets: most tests here are about
    the answers MongoDB gives; those about the bound start an api of their own."""
    return await start_api(MINING_IDEMPOTENCY_LOOKUP_TIMEOUT=5)  # type: ignore[no-any-return]


@pytest.fixture
def apply_queued(
    database: Db, redis_server: RedisServer, redis_client: redis.Redis
) -> Iterator[Any]:
    """Apply every queued job as a worker would (and unmark the users, as a worker does)."""
    raw = redis.Redis.from_url(redis_server.url)
    ledger = Ledger(database, reward_per_click=1)
    recorder = OutcomeRecorder(raw, status_ttl=60, window_seconds=30)
    runner = BatchRunner(ledger, recorder, Backoff(), retry_budget_seconds=1)

    def apply() -> None:
        while job := redis_client.lpop("rq:queue:mining-clicks"):
            runner.run_job(str(job))
        ledger.flush()

    yield apply
    raw.close()


async def beyond_the_window(
    api: Api, apply_queued: Any, redis_client: redis.Redis, user: str, key: str, clicks: int
) -> None:
    """A click accepted, applied, and its record gone from Redis as after the window."""
    assert (await api.click(user, key, {"clicks": clicks})).status_code == 202
    apply_queued()
    redis_client.delete(Keys.click(user, key))


def lookups(result: str) -> float:
    return REGISTRY.get_sample_value("mining_idempotency_lookups_total", {"result": result}) or 0


async def test_the_same_answer_within_and_beyond_the_window(
    api: Api, apply_queued: Any, redis_client: redis.Redis
) -> None:
    assert (await api.click("u1", "k", {"clicks": 2})).status_code == 202
    assert (await api.click("u1", "later", {"clicks": 3})).status_code == 202
    apply_queued()
    within_click = await api.click("u1", "k", {"clicks": 2})
    within_status = await api.status("u1", "k")
    assert within_click.json()["result"]["balance"] == 5
    assert within_status.json() == within_click.json()
    assert 0 < redis_client.ttl(Keys.click("u1", "k")) <= 30  # the worker's window

    found = lookups("found")
    redis_client.delete(Keys.click("u1", "k"))  # the window passed
    beyond_status = await api.status("u1", "k")
    assert (beyond_status.status_code, beyond_status.json()) == (200, within_status.json())
    beyond_click = await api.click("u1", "k", {"clicks": 2})
    assert beyond_click.status_code == 200
    assert beyond_click.headers["Idempotent-Replayed"] == "true"
    assert beyond_click.json() == within_click.json()
    assert lookups("found") == found + 2
    # Not counted again, nothing queued; and the record is back in Redis for a window.
    assert redis_client.get(Keys.queue_depth) == "0"
    status = await api.client.get("/api/mining/status", headers=api.auth("u1"))
    assert (status.json()["balance"], status.json()["clicks"]) == (5, 5)
    assert 0 < redis_client.ttl(Keys.click("u1", "k")) <= api.settings.idempotency.window_seconds
    assert (await api.click("u1", "k", {"clicks": 2})).json() == within_click.json()


async def test_a_key_reused_with_other_clicks_beyond_the_window_is_422(
    api: Api, apply_queued: Any, redis_client: redis.Redis
) -> None:
    await beyond_the_window(api, apply_queued, redis_client, "u1", "k", 2)
    reused = await api.click("u1", "k", {"clicks": 3})
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")
    assert redis_client.get(Keys.queue_depth) == "0"
    redis_client.delete(Keys.click("u1", "k"))
    assert (await api.click("u1", "k", {"clicks": 2})).status_code == 200


async def test_unknown_keys_are_404_after_asking_mongodb(api: Api) -> None:
    new = lookups("new")
    missing = await api.status("u1", "never-sent")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert lookups("new") == new + 1


async def test_keys_of_other_users_and_separators_stay_apart_in_mongodb(
    api: Api, apply_queued: Any, redis_client: redis.Redis
) -> None:
    """A key holding ``:`` and digits stays its own user's: user ``a``'s key ``2:ab:c`` is not
    user ``ab``'s key ``c`` (whose ``_id`` is ``2:ab:c``), however the ``_id`` is read."""
    await beyond_the_window(api, apply_queued, redis_client, "a", "2:ab:c", 2)
    assert (await api.status("ab", "c")).status_code == 404
    assert (await api.status("a", "2:ab:c")).json()["clicks"] == 2


async def test_a_mongodb_away_holds_no_click_up(start_api: Any, tmp_path: Any) -> None:
    """Clicks are taken as new (the unique index keeps them from counting twice); a status that
    only MongoDB could give is 503. After a failure the next lookups are skipped for a while."""
    away = MongoServer(tmp_path / "away")  # never started: nothing listens on its port
    api: Api = await start_api(MONGODB_URI=away.uri, DB_SERVER_SELECTION_TIMEOUT=5000)
    unchecked = lookups("unchecked")
    started = time.monotonic()
    first = await api.click("u1", "a")
    second = await api.click("u1", "b")
    elapsed = time.monotonic() - started
    assert (first.status_code, second.status_code) == (202, 202)
    assert lookups("unchecked") == unchecked + 2
    # The first lookup waited for its bound (not for server selection); the second none.
    assert elapsed < api.settings.idempotency.lookup_timeout + 2, elapsed
    status = await api.status("u1", "not-in-redis")
    assert (status.status_code, status.json()["error"]) == (503, "mongodb_unavailable")
    assert status.headers["Retry-After"] == "1"
    assert (await api.status("u1", "a")).status_code == 202  # Redis still answers


async def test_a_mongodb_that_stops_answering_holds_no_click_up(
    start_api: Any, tmp_path: Any
) -> None:
    """The connections are open and MongoDB stops answering on them (a frozen primary):
    every click is still answered within the lookup's bound."""
    frozen = MongoServer(tmp_path / "frozen").start()
    api: Api = await start_api(MONGODB_URI=frozen.uri, MINING_IDEMPOTENCY_LOOKUP_TIMEOUT=0.2)
    try:
        assert (await api.click("u1", "warm")).status_code == 202  # the pool is open
        frozen.signal(signal.SIGSTOP)
        unchecked = lookups("unchecked")
        for key in ("a", "b", "c"):
            started = time.monotonic()
            assert (await api.click("u1", key)).status_code == 202
            assert time.monotonic() - started < 2, key
            await asyncio.sleep(SKIP_SECONDS)  # each click's lookup is tried, not skipped
        assert lookups("unchecked") == unchecked + 3
    finally:
        frozen.signal(signal.SIGCONT)
        frozen.stop()


class CancellationIgnored(AppliedClicks):
    """A driver that takes a cancelled read as a network error and retries it, no longer
    cancelled, until its connect timeout: a fault the real driver shows only under rare
    timing."""

    cancelled = 0

    async def _read(self, pairs: Any) -> Any:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
        await asyncio.sleep(1.5)
        raise AutoReconnect("connect timed out")


async def test_a_read_that_ignores_cancellation_still_ends_on_time(database: Db) -> None:
    applied = CancellationIgnored(database.client[database.name], timeout_seconds=0.1)  # type: ignore[arg-type]
    started = time.monotonic()
    assert await applied.find([("u1", "a")]) is None
    assert time.monotonic() - started < 1
    await asyncio.sleep(2)  # the read, cancelled, went on and ended by itself
    assert applied.cancelled == 1


def test_a_record_without_its_batch_marker_has_no_balance(database: Db) -> None:
    """Markers expire (``JOB_FAILURE_TTL`` + 1 day), and those of an earlier version hold no
    balances: the balance right after the batch is then unknown."""
    ledger = Ledger(database, reward_per_click=4)
    ledger.ensure_indexes()
    ledger.apply("b2", [QueuedClick("u1", "k", 2, 1_700_000_000_000)])
    docs = list(database["clicks"].find(clicks_filter([("u1", "k"), ("u1", "none")])))
    [(pair, record)] = records(docs, []).items()
    assert pair == ("u1", "k")
    assert (record.state, record.clicks, record.reward, record.balance) == ("completed", 2, 8, None)
    assert record.accepted_ms == 1_700_000_000_000
