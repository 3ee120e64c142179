"""The operator's settings, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_mine.common.settings import Env, SettingsError
from crypto_mine.operator.allowlist import AllowList, AllowListError


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment."""

    # Namespaces to watch (WATCH_NAMESPACE, comma-separated); empty = all namespaces.
    namespaces: tuple[str, ...] = ()
    # Used when a QueueAutoscaler names no URL of its own: credentials stay out of the spec.
    redis_url: str | None = None
    prometheus_url: str | None = None
    # Where a QueueAutoscaler's own metric.prometheusUrl / metric.redisUrl may point
    # (METRIC_URL_ALLOWLIST, comma-separated, plus the two URLs above).
    metric_urls: AllowList = field(default_factory=AllowList)
    # Bound on one reading of the metric (Prometheus query or Redis GET).
    metric_timeout: float = 3.0
    metrics_port: int = 8000
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Env) -> OperatorSettings:
        raw_namespaces = env.optional("WATCH_NAMESPACE") or ""
        redis_url = env.optional("REDIS_URL")
        prometheus_url = env.optional("PROMETHEUS_URL")
        entries = (env.optional("METRIC_URL_ALLOWLIST") or "").split(",")
        try:
            metric_urls = AllowList.of(
                (e.strip() for e in entries), own=(prometheus_url, redis_url)
            )
        except AllowListError as error:
            raise SettingsError(f"METRIC_URL_ALLOWLIST: {error}.") from None
        return cls(
            namespaces=tuple(n.strip() for n in raw_namespaces.split(",") if n.strip()),
            redis_url=redis_url,
            prometheus_url=prometheus_url,
            metric_urls=metric_urls,
            metric_timeout=env.float("METRIC_TIMEOUT", cls.metric_timeout, min=0.1, max=60),
            metrics_port=env.int("METRICS_PORT", cls.metrics_port, min=0, max=65535),
            liveness_endpoint=env.str("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            log_level=env.choice("LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
        )
