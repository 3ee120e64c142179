"""The worker's settings: one frozen object built from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from crypto_mine.common.names import Ttl
from crypto_mine.common.retry import Backoff
from crypto_mine.common.settings import Env, MongoSettings, RedisSettings, window_seconds
from crypto_mine.pipeline.events import EventSettings
from crypto_mine.pipeline.runtime import PipelineSettings


@dataclass(frozen=True)
class WorkerSettings:
    redis: RedisSettings  # the Redis of the worker's shard
    shard: int  # the click shard whose queue this worker serves (``names.shard_of``)
    shards: int
    mongo: MongoSettings
    concurrency: int
    metrics_port: int
    reward_per_click: int
    retry_budget_seconds: float
    backoff: Backoff
    heartbeat_margin_seconds: int
    maintenance_interval_seconds: int
    worker_ttl_seconds: int
    shutdown_grace_seconds: float
    status_cache_ttl_seconds: int
    idempotency_window_seconds: int
    events: EventSettings
    log_level: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> WorkerSettings:
        env = env or Env()
        redis = RedisSettings.from_env(env)
        shard = env.int("MINING_SHARD", 0, min=0)
        return cls(
            redis=redis.shard(shard),
            shard=shard,
            shards=redis.shards,
            mongo=MongoSettings.from_env(env),
            concurrency=env.int("MINING_WORKER_CONCURRENCY", 4, min=1, max=64),
            metrics_port=env.int("WORKER_METRICS_PORT", 9100, min=0, max=65535),
            reward_per_click=env.int("MINING_REWARD_PER_CLICK", 1, min=1),
            retry_budget_seconds=env.float("MINING_WORKER_RETRY_BUDGET", 20.0, min=0.1),
            backoff=Backoff(
                base=env.float("MINING_WORKER_RETRY_BASE", 0.1, min=0.001),
                cap=env.float("MINING_WORKER_RETRY_CAP", 5.0, min=0.001),
            ),
            heartbeat_margin_seconds=env.int("MINING_WORKER_HEARTBEAT_MARGIN", 10, min=1),
            maintenance_interval_seconds=env.int("MINING_WORKER_MAINTENANCE_INTERVAL", 10, min=1),
            worker_ttl_seconds=env.int("MINING_WORKER_TTL", 30, min=16),
            shutdown_grace_seconds=env.float("MINING_WORKER_SHUTDOWN_GRACE", 60.0, min=1),
            status_cache_ttl_seconds=env.int("MINING_STATUS_CACHE_TTL", Ttl.status_cache, min=1),
            idempotency_window_seconds=window_seconds(env),
            events=EventSettings.from_env(env),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        )

    @property
    def pipeline(self) -> PipelineSettings:
        return PipelineSettings(
            redis=self.redis,
            mongo=self.mongo,
            reward_per_click=self.reward_per_click,
            status_cache_ttl_seconds=self.status_cache_ttl_seconds,
            idempotency_window_seconds=self.idempotency_window_seconds,
            events=self.events,
            retry_budget_seconds=self.retry_budget_seconds,
            backoff=self.backoff,
            shard=self.shard,
        )
