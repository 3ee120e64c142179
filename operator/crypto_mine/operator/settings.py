"""The operator's settings, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from crypto_mine.common.settings import Env, redis_url


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment."""

    # Namespaces to watch (WATCH_NAMESPACE, comma-separated); empty = all namespaces.
    namespaces: tuple[str, ...] = ()
    # Used when a QueueAutoscaler names no URL of its own: credentials stay out of the spec.
    redis_url: str | None = None
    prometheus_url: str | None = None
    # Bound on one reading of the metric (Prometheus query or Redis GET).
    metric_timeout: float = 3.0
    metrics_port: int = 8000
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Env) -> OperatorSettings:
        raw_namespaces = env.optional("WATCH_NAMESPACE") or ""
        return cls(
            namespaces=tuple(n.strip() for n in raw_namespaces.split(",") if n.strip()),
            redis_url=redis_url(env),
            prometheus_url=env.optional("PROMETHEUS_URL"),
            metric_timeout=env.float("METRIC_TIMEOUT", cls.metric_timeout, min=0.1, max=60),
            metrics_port=env.int("METRICS_PORT", cls.metrics_port, min=0, max=65535),
            liveness_endpoint=env.str("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            log_level=env.choice("LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
        )
