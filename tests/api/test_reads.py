"""Status and balance reads under a burst: coalesced into pipelines, never out of connections."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.support.api import Api

pytestmark = pytest.mark.anyio


async def test_a_burst_of_reads_far_above_the_pool_is_answered(start_api: Any) -> None:
    """400 reads at once through a pool of 64 connections: every one answered. With one
    connection per read, those past the 64th failed at once ("Too many connections": 503).
    (The process's in-flight bound is raised above the burst: this is about the pool.)"""
    api: Api = await start_api(MAX_REQUESTS_IN_FLIGHT=1000)
    headers = {n: api.auth(f"u{n}") for n in range(20)}
    for n in range(20):
        assert (await api.click(f"u{n}", "k")).status_code == 202
    status = "/api/mining/click/status?key=k"
    answers = await asyncio.gather(
        *(api.client.get(status, headers=headers[n % 20]) for n in range(200)),
        *(api.client.get("/api/mining/status", headers=headers[n % 20]) for n in range(200)),
    )
    assert Counter(a.status_code for a in answers) == {202: 200, 200: 200}
