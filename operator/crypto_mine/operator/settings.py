"""The operator's settings, read once from the environment at start-up."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from crypto_mine.common.settings import Env, SettingsError, redis_url, shard_urls

from .allowlist import AllowList, AllowListError
from .leader import Election

# Where Kubernetes puts the pod's namespace beside its ServiceAccount token.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment."""

    # Namespaces to watch (WATCH_NAMESPACE, comma-separated); empty = all namespaces.
    namespaces: tuple[str, ...] = ()
    # Used when a QueueAutoscaler names no URL of its own: credentials stay out of the spec.
    redis_url: str | None = None
    # Every click shard's Redis, shard 0 first (REDIS_SHARD_URLS); () is one shard, redis_url.
    redis_shard_urls: tuple[str, ...] = ()
    prometheus_url: str | None = None
    # Where a QueueAutoscaler's own metric.prometheusUrl / metric.redisUrl may point
    # (METRIC_URL_ALLOWLIST, comma-separated, plus the two URLs above).
    metric_urls: AllowList = field(default_factory=AllowList)
    # Deployments a QueueAutoscaler may scale (SCALE_TARGETS, comma-separated); empty = any in
    # the watched namespaces. RBAC should grant the same names.
    scale_targets: tuple[str, ...] = ()
    # Bound on one reading of the metric (Prometheus query or Redis GET).
    metric_timeout: float = 3.0
    metrics_port: int = 8000
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    log_level: str = "INFO"
    # The Lease replicas elect a leader on (LEADER_ELECTION, default on); None: act alone.
    election: Election | None = None

    @classmethod
    def from_env(cls, env: Env) -> OperatorSettings:
        redis = redis_url(env)
        shards = shard_urls(env, redis)
        redis = shards[0] if shards else redis
        prometheus_url = env.optional("PROMETHEUS_URL")
        entries = (env.optional("METRIC_URL_ALLOWLIST") or "").split(",")
        try:
            metric_urls = AllowList.of((e.strip() for e in entries), own=(prometheus_url, redis))
        except AllowListError as error:
            raise SettingsError(f"METRIC_URL_ALLOWLIST: {error}.") from None
        return cls(
            namespaces=_names(env.optional("WATCH_NAMESPACE")),
            redis_url=redis,
            redis_shard_urls=shards,
            prometheus_url=prometheus_url,
            metric_urls=metric_urls,
            scale_targets=_names(env.optional("SCALE_TARGETS")),
            metric_timeout=env.float("METRIC_TIMEOUT", cls.metric_timeout, min=0.1, max=60),
            metrics_port=env.int("METRICS_PORT", cls.metrics_port, min=0, max=65535),
            liveness_endpoint=env.str("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            log_level=env.choice("LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            election=_election(env) if env.bool("LEADER_ELECTION", True) else None,
        )


def _election(env: Env, namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> Election:
    """LEASE_NAMESPACE (default: the pod's own), LEASE_NAME, and client-go's timings."""
    namespace = env.optional("LEASE_NAMESPACE") or env.optional("POD_NAMESPACE")
    if namespace is None and namespace_file.is_file():
        namespace = namespace_file.read_text().strip() or None
    if namespace is None:
        raise SettingsError(
            "LEASE_NAMESPACE is missing: outside a pod, name the namespace of the leader "
            "Lease (or set LEADER_ELECTION=false for a single replica)."
        )
    # A new identity per process: a restarted leader is a new candidate.
    who = env.optional("POD_NAME") or socket.gethostname()
    name = env.str("LEASE_NAME", "crypto-mine-operator")
    duration = env.float("LEASE_DURATION", 15.0, min=1, max=3600)
    renew_deadline = env.float("LEASE_RENEW_DEADLINE", 10.0, min=1, max=3600)
    retry_period = env.float("LEASE_RETRY_PERIOD", 2.0, min=0.1, max=600)
    try:
        return Election(
            namespace, name, f"{who}_{uuid.uuid4().hex[:8]}", duration, renew_deadline, retry_period
        )
    except ValueError as error:
        raise SettingsError(f"{error}.") from None


def _names(raw: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (raw or "").split(",") if n.strip())
