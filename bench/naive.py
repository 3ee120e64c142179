"""The naive baseline of the end-to-end row: one RQ job per click, one forking worker per job.

    python -m bench.serve bench.naive:app     the api: verify the token, one ``enqueue`` per click
    python -m bench.naive worker              RQ's default (forking) ``Worker`` on the queue

The job does what a first version would: ``insert_one`` of the click, then ``update_one``
with ``$inc`` on the user's balance. The worker process imports this module (and pymongo)
before it forks, so each job pays the fork, not the imports; each forked job opens its own
MongoDB client, since a client must not cross a fork.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
from pymongo import MongoClient
from redis import Redis
from rq import Queue, Worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

QUEUE = "naive-clicks"
JOB = "bench.naive.apply_click"

_clients: dict[int, MongoClient[dict[str, Any]]] = {}


def database() -> Any:
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = MongoClient(os.environ["MONGODB_URI"])
    return _clients[pid][os.environ.get("MONGODB_DB", "bench_naive")]


def apply_click(user: str, key: str, clicks: int) -> int:
    db = database()
    db.clicks.insert_one(
        {"user": user, "key": key, "clicks": clicks, "appliedAt": datetime.now(UTC)}
    )
    db.balances.update_one(
        {"_id": user}, {"$inc": {"balance": clicks, "clicks": clicks}}, upsert=True
    )
    return clicks


def connection() -> Redis:
    return Redis.from_url(os.environ["REDIS_URL"])


queue = Queue(QUEUE, connection=connection()) if "REDIS_URL" in os.environ else None


async def click(request: Request) -> Response:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, os.environ["JWT_SECRET"], algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    key = request.headers.get("idempotency-key")
    if not key:
        return JSONResponse({"error": "missing_idempotency_key"}, status_code=400)
    raw = await request.body()
    clicks = int(orjson.loads(raw).get("clicks", 1)) if raw else 1
    assert queue is not None, "REDIS_URL is not set"
    queue.enqueue(JOB, str(claims["sub"]), key, clicks)
    return JSONResponse({"idempotencyKey": key, "status": "queued"}, status_code=202)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/mining/click", click, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def work() -> None:
    redis = connection()
    Worker([Queue(QUEUE, connection=redis)], connection=redis).work(
        with_scheduler=False, logging_level="WARNING"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["worker"]:
        sys.exit("usage: python -m bench.naive worker")
    work()
