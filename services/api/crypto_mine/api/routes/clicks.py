"""``POST /api/mining/click`` and ``GET /api/mining/click/status``.

A click goes: auth -> input checks -> admission (limits, idempotency, backpressure, enqueue in
one atomic Redis step) -> 202, or the stored outcome of a repeat. With ``USE_QUEUE=false``
(development and tests) the api then applies the click's job itself and answers with the
outcome (``inline.py``).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from crypto_mine.pipeline.failures import TransientFailure
from crypto_mine.pipeline.records import COMPLETED, FAILED, QUEUED, ClickRecord, Field

from ..admission import idempotency, limits
from ..admission.admission import Admission, ClickRequest, Verdict
from ..admission.applied import AppliedClicks
from ..admission.inline import InlineApplier
from ..admission.shards import Shard, Shards
from ..http import jsonbody
from ..http.auth import Authenticator
from ..http.clientip import client_ip
from ..http.errors import ApiError, JSONResponse, unavailable
from ..settings import ApiSettings
from .openapi_parts import (
    LIMIT_HEADERS,
    SECURED,
    UNAUTHORIZED,
    UNAVAILABLE,
    Paths,
    error_answer,
    json_answer,
    ref,
)

log = logging.getLogger(__name__)

REPLAY_HEADER = "Idempotent-Replayed"
BACKPRESSURE_RETRY_AFTER = "2"


def status_url(key: str) -> str:
    return f"/api/mining/click/status?key={quote(key, safe='')}"


async def read_all(receive: Receive) -> bytes:
    """The request body (a click's is one message: no stream machinery needed)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_body(request: Request, max_clicks: int) -> dict[str, Any]:
    """The normalized click body: ``{"clicks": n}``; an empty body is one click."""
    raw = await read_all(request.receive)
    if not raw.strip():
        return {"clicks": 1}
    body = jsonbody.parse(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The body must be a JSON object.")
    unknown = sorted(set(body) - {"clicks"})
    if unknown:
        raise ApiError(400, "invalid_body", f"Unknown field(s): {', '.join(unknown)}.")
    clicks = body.get("clicks", 1)
    if isinstance(clicks, float) and clicks.is_integer():
        clicks = int(clicks)  # 3.0 is the integer 3 in JSON (and in the OpenAPI schema)
    if isinstance(clicks, bool) or not isinstance(clicks, int) or not 1 <= clicks <= max_clicks:
        raise ApiError(400, "invalid_body", f"'clicks' must be an integer from 1 to {max_clicks}.")
    return {"clicks": clicks}


class ClickEndpoints:
    def __init__(
        self,
        settings: ApiSettings,
        auth: Authenticator,
        shards: Shards,
        applied: AppliedClicks,
        inline: InlineApplier | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.shards = shards
        self.applied = applied
        self.inline = inline
        self.policy_header = limits.policies(shards.first.admitter.policies)

    async def click(self, request: Request) -> Response:
        user_id = await self.auth.user_id(request)
        key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
        body = await read_body(request, self.settings.admission.max_clicks_per_request)
        click = ClickRequest(
            user_id=user_id,
            ip=client_ip(request, self.settings.http.trusted_proxies),
            key=key,
            clicks=body["clicks"],
        )
        shard = self.shards.of(user_id)
        admission = await shard.admitter.admit(click)
        if admission.verdict is Verdict.FULL:
            raise ApiError(
                503,
                "queue_full",
                "The click queue is full; retry later with the same Idempotency-Key.",
                {"Retry-After": BACKPRESSURE_RETRY_AFTER},
                queueDepth=admission.depth,
            )
        headers = limits.headers(admission, self.policy_header)
        if admission.verdict is Verdict.LIMITED:
            raise ApiError(
                429,
                "rate_limited",
                f"The {admission.policy.name} rate limit is exhausted; "
                f"retry after {headers['Retry-After']} s.",
                headers,
                limit=admission.policy.name,
            )
        if admission.verdict is Verdict.MISMATCH:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different body.",
                headers,
            )
        if self.inline is not None:
            return await self._applied_inline(shard, user_id, key, admission, headers)
        if admission.verdict is Verdict.REPLAYED:
            assert admission.record is not None
            record = ClickRecord.from_hash(key, admission.record)
            headers[REPLAY_HEADER] = "true"
            return JSONResponse(record.to_json(), status_code=200, headers=headers)
        headers["Location"] = status_url(key)
        return JSONResponse(
            {
                "idempotencyKey": key,
                "status": "queued",
                "clicks": click.clicks,
                "statusUrl": headers["Location"],
            },
            status_code=202,
            headers=headers,
        )

    async def _applied_inline(
        self, shard: Shard, user_id: str, key: str, admission: Admission, headers: dict[str, str]
    ) -> Response:
        """``USE_QUEUE=false``: apply the click's job now, then answer with its record."""
        assert self.inline is not None
        raw = admission.record or {}
        job_id = admission.job_id
        if admission.verdict is Verdict.REPLAYED and raw.get(Field.state) == QUEUED:
            job_id = raw.get(Field.job)  # an earlier inline run did not finish: finish it
        if job_id:
            try:
                await self.inline.run(job_id)
            except TransientFailure as error:
                raise ApiError(
                    503,
                    error.error_code,
                    "The click is recorded but could not be applied yet; "
                    "retry with the same Idempotency-Key.",
                    {"Retry-After": "1"},
                ) from None
            raw = await shard.reads.hash(shard.keys.click(user_id, key)) or raw
        record = ClickRecord.from_hash(key, raw)
        if admission.verdict is Verdict.REPLAYED:
            headers[REPLAY_HEADER] = "true"
            return JSONResponse(record.to_json(), status_code=200, headers=headers)
        status = {COMPLETED: 200, FAILED: 409}.get(record.state, 202)
        return JSONResponse(record.to_json(), status_code=status, headers=headers)

    async def status(self, request: Request) -> Response:
        user_id = await self.auth.user_id(request)
        key = idempotency.parse_key(request.query_params.get("key"), "The 'key' query parameter")
        shard = self.shards.of(user_id)
        raw = await shard.reads.hash(shard.keys.click(user_id, key))
        if raw:
            record = ClickRecord.from_hash(key, raw)
        else:  # not in the window: MongoDB holds every applied click
            found = await self.applied.find([(user_id, key)])
            if found is None:
                raise unavailable("mongodb")
            if not found:
                raise ApiError(404, "not_found", "No click with this key is known for this user.")
            record = found[(user_id, key)]
        status = {COMPLETED: 200, FAILED: 409}.get(record.state, 202)
        return JSONResponse(record.to_json(), status_code=status)


KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": idempotency.MAX_LENGTH,
    "pattern": "^[ -~]+$",
}
KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "Unique per click and user; retries reuse it. A repeat is answered "
    "with the click's original outcome, from Redis for MINING_IDEMPOTENCY_WINDOW_SECONDS "
    "after the click completed, from MongoDB after that.",
    "schema": KEY_SCHEMA,
}
OPENAPI: Paths = {
    "/api/mining/click": {
        "post": {
            "summary": "Queue a mining click",
            "description": "Order: auth, rate limits, idempotency, backpressure, enqueue.",
            "security": SECURED,
            "parameters": [KEY_HEADER],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("ClickRequest")}},
            },
            "responses": {
                "202": json_answer(ref("ClickQueued"), "Queued.", ["Location", *LIMIT_HEADERS]),
                "200": json_answer(
                    ref("ClickStatus"),
                    "A repeat of a known key: its current outcome. With USE_QUEUE=false "
                    "(development and tests only) also a new click, applied before the "
                    "answer (`Idempotent-Replayed` only on repeats).",
                    ["Idempotent-Replayed", *LIMIT_HEADERS],
                ),
                "409": json_answer(
                    ref("ClickStatus"),
                    "USE_QUEUE=false only: the new click failed, with its error code.",
                ),
                "400": error_answer("Missing or invalid Idempotency-Key, or invalid body."),
                "401": UNAUTHORIZED,
                "403": error_answer(
                    "Authenticated by the cookie, but sent from another site's page "
                    "(Sec-Fetch-Site or Origin)."
                ),
                "413": error_answer("Body too large."),
                "422": error_answer("The key was used before with a different body."),
                "429": error_answer("A rate limit is exhausted.", ["Retry-After", *LIMIT_HEADERS]),
                "503": UNAVAILABLE,
            },
        }
    },
    "/api/mining/click/status": {
        "get": {
            "summary": "Outcome of one of the caller's clicks",
            "security": SECURED,
            "parameters": [{"name": "key", "in": "query", "required": True, "schema": KEY_SCHEMA}],
            "responses": {
                "200": json_answer(ref("ClickStatus"), "Completed."),
                "202": json_answer(ref("ClickStatus"), "Queued or being applied."),
                "400": error_answer("Missing or invalid key."),
                "401": UNAUTHORIZED,
                "404": error_answer("Unknown key for this user."),
                "409": json_answer(ref("ClickStatus"), "Failed, with its error code."),
                "503": UNAVAILABLE,
            },
        }
    },
}
