"""POST /api/mining/click: every status code, the queue contract, concurrent duplicates."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from crypto_mine.common.names import APPLY_CLICKS_JOB, Keys
from crypto_mine.pipeline.queue_stats import QueueKeys
from tests.support.api import Api

pytestmark = pytest.mark.anyio


def queued_clicks(client: redis.Redis) -> list[dict[str, Any]]:
    """Every click of the jobs waiting in the RQ queue: RQ reads each job, its clicks are in
    the job's click list."""
    raw = redis.Redis(
        connection_pool=client.connection_pool.__class__(
            **{**client.connection_pool.connection_kwargs, "decode_responses": False}
        )
    )
    clicks: list[dict[str, Any]] = []
    for job_id in client.lrange(QueueKeys.queue, 0, -1):
        job = Job.fetch(str(job_id), connection=raw, serializer=JSONSerializer)
        assert job.func_name == APPLY_CLICKS_JOB
        assert job.origin == "mining-clicks"
        assert job.get_status() == "queued"
        assert job.args == []
        clicks.extend(orjson.loads(item) for item in client.lrange(Keys.batch(job.id), 0, -1))
    raw.close()
    return clicks


async def test_accepted_click_is_an_rq_job_with_location_and_limit_headers(
    api: Api, redis_client: redis.Redis
) -> None:
    response = await api.click("u1", "key-1", {"clicks": 3})
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/mining/click/status?key=key-1"
    assert response.json() == {
        "idempotencyKey": "key-1",
        "status": "queued",
        "clicks": 3,
        "statusUrl": "/api/mining/click/status?key=key-1",
    }
    assert response.headers["RateLimit-Policy"] == (
        '"global";q=1000;w=1, "user";q=100;w=1, "ip";q=1000;w=1'
    )
    assert response.headers["RateLimit"] == '"user";r=97;t=1'
    [click] = queued_clicks(redis_client)
    assert (click["user"], click["key"], click["clicks"]) == ("u1", "key-1", 3)
    assert redis_client.get(Keys.queue_depth) == "3"


async def test_location_escapes_the_key(api: Api) -> None:
    response = await api.click("u1", "a b/c?d&e")
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/mining/click/status?key=a%20b%2Fc%3Fd%26e"
    status = await api.client.get(response.headers["Location"], headers=api.auth("u1"))
    assert status.status_code == 202


async def test_repeat_replays_the_outcome(api: Api, redis_client: redis.Redis) -> None:
    assert (await api.click("u1", "k", {"clicks": 2})).status_code == 202
    again = await api.click("u1", "k", {"clicks": 2})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    body = again.json()
    assert (body["idempotencyKey"], body["status"], body["clicks"]) == ("k", "queued", 2)
    assert len(queued_clicks(redis_client)) == 1


async def test_empty_body_and_one_click_are_the_same_request(api: Api) -> None:
    assert (await api.click("u1", "k")).status_code == 202
    assert (await api.click("u1", "k", {"clicks": 1})).status_code == 200


async def test_key_reused_with_another_body_is_422(api: Api, redis_client: redis.Redis) -> None:
    assert (await api.click("u1", "k", {"clicks": 1})).status_code == 202
    reused = await api.click("u1", "k", {"clicks": 2})
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
    assert len(queued_clicks(redis_client)) == 1


async def test_keys_are_scoped_per_user(api: Api, redis_client: redis.Redis) -> None:
    assert (await api.click("u1", "same")).status_code == 202
    assert (await api.click("u2", "same", {"clicks": 2})).status_code == 202
    assert {c["user"] for c in queued_clicks(redis_client)} == {"u1", "u2"}


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (None, "idempotency_key_missing"),
        ("", "idempotency_key_missing"),
        ("x" * 256, "idempotency_key_invalid"),
        ("x" * 12_000, "idempotency_key_invalid"),
        ("key with \x7f delete", "idempotency_key_invalid"),
        ("tab\there", "idempotency_key_invalid"),
    ],
)
async def test_invalid_idempotency_key_is_400(api: Api, key: str | None, error: str) -> None:
    headers = api.auth("u1")
    if key is not None:
        headers["Idempotency-Key"] = key
    response = await api.client.post("/api/mining/click", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "Idempotency-Key" in response.json()["detail"]


async def test_longest_key_is_accepted(api: Api) -> None:
    assert (await api.click("u1", "~" * 255)).status_code == 202


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'{"clicks": 0}', "invalid_body"),
        (b'{"clicks": 11}', "invalid_body"),
        (b'{"clicks": true}', "invalid_body"),
        (b'{"clicks": "3"}', "invalid_body"),
        (b'{"clicks": 2.5}', "invalid_body"),
        (b'{"clicks": 1e400}', "invalid_json"),
        (b'{"amount": 3}', "invalid_body"),
        (b'{"clicks": 1, "clicks": 5}', "duplicate_key"),
        (b'{"clicks": 5, "clicks": 1}', "duplicate_key"),
        (b'{"clicks": 1, "clicks": 1}', "duplicate_key"),
        (b'{"clicks": 1, "x": {"a": 1, "a": 2}}', "duplicate_key"),
    ],
)
async def test_invalid_body_is_400_and_queues_nothing(
    api: Api, redis_client: redis.Redis, content: bytes, error: str
) -> None:
    headers = {**api.auth("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await api.client.post("/api/mining/click", headers=headers, content=content)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert redis_client.llen(QueueKeys.queue) == 0


async def test_bad_json_is_described_without_the_parser_s_words(api: Api) -> None:
    headers = {**api.auth("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await api.client.post("/api/mining/click", headers=headers, content=b'{"clicks":')
    assert response.json() == {
        "error": "invalid_json",
        "detail": "The body is not valid JSON (line 1, column 11).",
    }


@pytest.mark.parametrize(
    "content",
    [b'{"clicks": 2}', b'{ "clicks" : 2 }', b'{"clicks": 2.0}', b'{"clicks": 2, "x": null}'],
)
async def test_bodies_without_repeated_keys_pass_either_check(api: Api, content: bytes) -> None:
    headers = {**api.auth("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await api.client.post("/api/mining/click", headers=headers, content=content)
    expected = 400 if b"x" in content else 202
    assert response.status_code == expected, response.text
    if expected == 400:
        assert response.json()["error"] == "invalid_body"  # an unknown field, not a repeat


async def test_an_integral_number_is_an_integer(api: Api, redis_client: redis.Redis) -> None:
    """JSON (and the OpenAPI schema) make 2.0 the integer 2: the same click as {"clicks": 2}."""
    headers = {**api.auth("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    first = await api.client.post("/api/mining/click", headers=headers, content=b'{"clicks": 2.0}')
    assert first.status_code == 202, first.text
    assert first.json()["clicks"] == 2
    assert (await api.click("u1", "k", {"clicks": 2})).status_code == 200
    assert redis_client.get(Keys.queue_depth) == "2"


async def test_oversized_body_is_413_json(api: Api) -> None:
    headers = {**api.auth("u1"), "Idempotency-Key": "k"}
    content = b'{"clicks": 1, "pad": "' + b"x" * 10_000 + b'"}'
    response = await api.client.post("/api/mining/click", headers=headers, content=content)
    assert response.status_code == 413
    assert response.json()["error"] == "content_too_large"


async def test_full_queue_is_503_and_refunds_nothing_it_did_not_take(
    start_api: Any, redis_client: redis.Redis
) -> None:
    api = await start_api(MINING_QUEUE_MAX_DEPTH=3, MINING_RATE_LIMIT_PER_USER=0.001)
    assert (await api.click("u1", "a", {"clicks": 2})).status_code == 202
    full = await api.click("u1", "b", {"clicks": 2})
    assert full.status_code == 503
    assert full.headers["Retry-After"] == "2"
    assert full.json()["error"] == "queue_full"
    assert (await api.click("u1", "c", {"clicks": 1})).status_code == 202
    assert redis_client.get(Keys.queue_depth) == "3"
    # The rejected click left no record: it is new when retried once there is room.
    assert (await api.status("u1", "b")).status_code == 404
    # Tokens are only taken by clicks that got an answer other than 503.
    tokens = float(redis_client.hget(Keys.user_bucket("u1"), "t") or 0)
    assert 97 <= tokens < 97.2


async def test_concurrent_duplicates_enqueue_exactly_once(
    api: Api, redis_client: redis.Redis
) -> None:
    responses = await asyncio.gather(*(api.click("u1", "dup") for _ in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 1
    assert codes.count(200) == 49
    assert [c["key"] for c in queued_clicks(redis_client)] == ["dup"]
    assert redis_client.get(Keys.queue_depth) == "1"


async def test_concurrent_clicks_share_jobs(api: Api, redis_client: redis.Redis) -> None:
    responses = await asyncio.gather(*(api.click(f"u{i % 7}", f"k{i}") for i in range(60)))
    assert all(r.status_code == 202 for r in responses)
    clicks = queued_clicks(redis_client)
    assert sorted(c["key"] for c in clicks) == sorted(f"k{i}" for i in range(60))
    assert redis_client.llen(QueueKeys.queue) < 60
    assert redis_client.get(Keys.queue_depth) == "60"


async def test_oversized_body_is_413_json_even_before_auth(api: Api) -> None:
    content = b"x" * 10_000
    response = await api.client.post("/api/mining/click", content=content)
    assert response.status_code == 413
    assert response.json()["error"] == "content_too_large"


async def test_streamed_oversized_body_is_413_json(api: Api) -> None:
    class Chunks:
        """Ten 1000-byte chunks with no length announced (an iterator, not a generator, so
        stopping early leaves nothing to finalize)."""

        def __init__(self) -> None:
            self.left = 10

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            self.left -= 1
            return b"x" * 1000

    headers = {**api.auth("u1"), "Idempotency-Key": "k"}
    response = await api.client.post("/api/mining/click", headers=headers, content=Chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "content_too_large"


async def test_openapi_documents_the_configured_largest_click(start_api: Any) -> None:
    api = await start_api(MINING_MAX_CLICKS_PER_REQUEST=7)
    document = (await api.client.get("/openapi.json")).json()
    clicks = document["components"]["schemas"]["ClickRequest"]["properties"]["clicks"]
    assert (clicks["minimum"], clicks["maximum"]) == (1, 7)
    assert (await api.click("u1", "a", {"clicks": 7})).status_code == 202
    assert (await api.click("u1", "b", {"clicks": 8})).status_code == 400
