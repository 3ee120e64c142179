"""Admission of clicks: limits, idempotency, backpressure and enqueue in one Redis round trip.

Concurrent requests are coalesced (``batching.py``): while a script call is in flight, new
clicks wait in a list, and the next call carries all of them (up to ``batch_max_clicks``,
``batch_concurrency`` calls in flight per process). Each call runs the Lua script
``lua/admit.lua`` (its parts included in order) atomically; the accepted clicks join the job
still waiting at the tail of the RQ queue, or a new one (``lua/enqueue.lua``), so jobs grow to
``job_max_clicks`` while workers are busy. A click is answered ``202`` only after that call
returned, so it is in Redis, with its idempotency record, in the same atomic step.

Before its script runs, a batch's keys are looked up in MongoDB (``applied.py``, one read):
Redis holds records for a window only, and a key repeated after it is found there and
answered with its stored outcome by the same script, instead of being taken as new.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, NamedTuple

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat

from crypto_mine.common import scripts
from crypto_mine.common.metrics import REDIS_LATENCY
from crypto_mine.common.names import (
    APPLY_CLICKS_JOB,
    JOB_FAILURE_TTL,
    JOB_RESULT_TTL,
    JOB_RETRIES,
    QUEUE_NAME,
    ShardKeys,
    queue_name,
)
from crypto_mine.pipeline.queue_stats import ShardQueueKeys

from .. import SCRIPTS
from ..settings import ApiSettings, Bucket
from .applied import AppliedClicks
from .batching import Batcher

log = logging.getLogger(__name__)

SCRIPT = "admit.lua"


class Verdict(IntEnum):
    ACCEPTED = 1
    REPLAYED = 2
    MISMATCH = 3
    LIMITED = 4
    FULL = 5


VERDICTS = {verdict.value: verdict for verdict in Verdict}  # faster than Verdict(value)


@dataclass(frozen=True, slots=True)
class ClickRequest:
    """One click as the request asks for it."""

    user_id: str
    ip: str
    key: str
    clicks: int


def clicks_of(click: ClickRequest) -> int:
    return click.clicks


class Admission(NamedTuple):
    """What admission decided for one click (a tuple: one is made per click, cheaply)."""

    verdict: Verdict
    policy: Bucket
    remaining: int
    reset_ms: int
    wait_ms: int
    depth: int
    job_id: str | None
    record: dict[str, str] | None


class JobTemplate:
    """The RQ job hash of a batch, built once by RQ itself; its clicks live in ``Keys.batch``.

    Every job's hash is the same but for its creation and enqueue times.
    """

    TIMES = ("created_at", "enqueued_at")

    def __init__(self, settings: ApiSettings, queue: str = QUEUE_NAME) -> None:
        # RQ only needs a connection object to build the dict; nothing is sent through it.
        job_tuple: tuple[Any, ...] = (APPLY_CLICKS_JOB, None, (), {})
        job = Job.create(
            APPLY_CLICKS_JOB,
            args=(),
            connection=SyncRedis(),
            serializer=JSONSerializer,
            timeout=settings.admission.job_timeout_seconds,
            result_ttl=JOB_RESULT_TTL,
            failure_ttl=JOB_FAILURE_TTL,
            description="apply a batch of mining clicks",
            origin=queue,
            status=JobStatus.QUEUED,
        )
        job.enqueued_at = now()
        job.retries_left = JOB_RETRIES
        # Uncompressed JSON, which RQ reads as well as its own zlib-compressed form.
        data = JSONSerializer.dumps(job_tuple).decode()  # type: ignore[no-untyped-call]
        self._fields: list[str] = ["data", data]
        for name, raw in job.to_dict().items():
            if name == "data" or raw is None:
                continue
            value = raw.value if isinstance(raw, Enum) else raw
            self._fields.append(name)
            self._fields.append(value.decode() if isinstance(value, bytes) else str(value))
        self._times = [i + 1 for i, name in enumerate(self._fields) if name in self.TIMES]

    def fields(self) -> list[str]:
        """Field/value pairs of a job created now."""
        stamp = utcformat(now())
        fields = self._fields.copy()
        for index in self._times:
            fields[index] = stamp
        return fields


class Admitter:
    """Runs the admission script for batches of concurrent clicks (``batching.py``)."""

    def __init__(
        self, redis: Redis, settings: ApiSettings, applied: AppliedClicks, shard: int = 0
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.applied = applied
        self.keys = ShardKeys(shard)
        self.queue = ShardQueueKeys(shard).queue
        self.script = redis.register_script(scripts.load(SCRIPTS, SCRIPT))
        self.template = JobTemplate(settings, queue_name(shard))
        self.policies = (
            settings.limits.global_bucket,
            settings.limits.user_bucket,
            settings.limits.ip_bucket,
        )
        # Each shard takes its share of the global rate: users spread evenly over the shards.
        shards, whole = settings.redis.shards, settings.limits.global_bucket
        share = (
            whole
            if shards == 1
            else Bucket(whole.name, whole.rate / shards, whole.burst // shards or 1)
        )
        self._limits = [
            str(value)
            for bucket in (share, *self.policies[1:])
            for value in (bucket.rate, bucket.burst)
        ]
        self.batcher: Batcher[ClickRequest, Admission] = Batcher(
            self._run,
            concurrency=settings.admission.batch_concurrency,
            max_weight=settings.admission.batch_max_clicks,
            timeout=settings.admission.timeout_seconds,
            what="admission",
            weight=clicks_of,
        )

    async def admit(self, click: ClickRequest) -> Admission:
        return await self.batcher.submit(click)

    async def close(self) -> None:
        await self.batcher.close()

    async def _run(self, clicks: list[ClickRequest]) -> list[Admission]:
        stored = await self.applied.find([(click.user_id, click.key) for click in clicks]) or {}
        job_id = uuid.uuid4().hex
        at = int(time.time() * 1000)
        fields = self.template.fields()
        names = self.keys
        keys = [
            names.global_bucket,
            names.queue_depth,
            names.queue_jobs,
            self.queue,
            Job.redis_job_namespace_prefix + job_id,
            Queue.redis_queues_keys,
            names.open_job,
            names.batch(job_id),
        ]
        args: list[Any] = [
            *self._limits,
            self.settings.admission.queue_max_depth,
            self.settings.idempotency.ttl_seconds,
            job_id,
            self.settings.admission.job_max_clicks,
            sum(click.clicks for click in clicks),
            len(fields) // 2,
            names.batch_prefix,
            self.settings.idempotency.window_seconds,
            at,
            *fields,
        ]
        for click in clicks:
            keys += [
                names.user_bucket(click.user_id),
                names.ip_bucket(click.ip),
                names.click(click.user_id, click.key),
            ]
            payload = {"user": click.user_id, "key": click.key, "clicks": click.clicks, "at": at}
            record = stored.get((click.user_id, click.key))
            args += [
                click.clicks,
                orjson.dumps(payload),
                " ".join(record.fields()) if record else "",
            ]
        started = time.perf_counter()
        depth, enqueued, results = await self.script(keys=keys, args=args)
        REDIS_LATENCY.labels("admit").observe((time.perf_counter() - started) * 1000)
        job = enqueued.decode() if isinstance(enqueued, bytes) else enqueued
        admissions = [self._admission(result, int(depth), job) for result in results]
        if log.isEnabledFor(logging.INFO):
            log.info(
                "admitted %s clicks",
                len(clicks),
                extra={
                    "jobId": job,
                    "queueDepth": int(depth),
                    "clicks": [
                        {
                            "userId": click.user_id,
                            "idempotencyKey": click.key,
                            "outcome": admission.verdict.name.lower(),
                        }
                        for click, admission in zip(clicks, admissions, strict=True)
                    ],
                },
            )
        return admissions

    def _admission(self, result: list[Any], depth: int, job_id: str | None) -> Admission:
        verdict = VERDICTS[int(result[0])]
        record = None
        if len(result) > 5:
            flat = [item.decode() if isinstance(item, bytes) else str(item) for item in result[5]]
            record = dict(zip(flat[::2], flat[1::2], strict=True))
        policy = int(result[1])
        return Admission(
            verdict=verdict,
            policy=self.policies[policy - 1] if policy else self.policies[0],
            remaining=int(result[2]),
            reset_ms=int(result[3]),
            wait_ms=int(result[4]),
            depth=depth,
            job_id=job_id if verdict is Verdict.ACCEPTED else None,
            record=record,
        )
