"""GET /api/mining/click/status: 200 completed, 202 queued, 409 failed, 404 unknown, 400."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from crypto_mine.common.names import Keys
from crypto_mine.pipeline.records import Field
from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def test_queued_completed_failed(api: Api, redis_client: redis.Redis) -> None:
    for key in ("done", "bad", "waiting"):
        assert (await api.click("u1", key)).status_code == 202
    waiting = await api.status("u1", "waiting")
    assert waiting.status_code == 202
    assert waiting.json()["status"] == "queued"
    assert waiting.json()["acceptedAt"].endswith("+00:00")

    # What the worker writes when it finishes (its own tests drive the real worker).
    done_fields: dict[Any, Any] = {
        Field.state: "completed",
        Field.reward: 1,
        Field.balance: 41,
        Field.applied_ms: 1_700_000_000_000,
    }
    failed: dict[Any, Any] = {Field.state: "failed", Field.error: "invalid_click"}
    redis_client.hset(Keys.click("u1", "done"), mapping=done_fields)
    redis_client.hset(Keys.click("u1", "bad"), mapping=failed)

    done = await api.status("u1", "done")
    assert done.status_code == 200
    assert done.json()["result"] == {
        "reward": 1,
        "balance": 41,
        "appliedAt": "2023-11-14T22:13:20.000+00:00",
        "duplicate": False,
    }
    bad = await api.status("u1", "bad")
    assert bad.status_code == 409
    assert bad.json()["error"] == {"code": "invalid_click"}
    # A repeat of the click reports the same outcome.
    replay = await api.click("u1", "done")
    assert replay.status_code == 200
    assert replay.json()["status"] == "completed"


async def test_unknown_and_foreign_keys_are_404(api: Api) -> None:
    assert (await api.click("u1", "mine")).status_code == 202
    unknown = await api.status("u1", "nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    assert (await api.status("u2", "mine")).status_code == 404


@pytest.mark.parametrize("params", [{}, {"key": ""}, {"key": "x" * 256}, {"key": "\x01"}])
async def test_missing_or_invalid_key_is_400(api: Api, params: dict[str, str]) -> None:
    response = await api.client.get(
        "/api/mining/click/status", params=params, headers=api.auth("u1")
    )
    assert response.status_code == 400
    assert "'key' query parameter" in response.json()["detail"]


async def test_status_requires_auth(api: Api) -> None:
    response = await api.client.get("/api/mining/click/status", params={"key": "k"})
    assert response.status_code == 401
