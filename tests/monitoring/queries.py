"""Every PromQL query of the generated dashboards, and the variables Grafana would fill in."""

from __future__ import annotations

from grafana.__main__ import model
from grafana.dashboards import DASHBOARDS

# Series of kube-state-metrics and of the kubelet's cAdvisor (worker replicas, pod resources):
# a cluster has them, the processes of the tests do not.
CLUSTER_METRICS = {
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_deployment_status_replicas_available",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
}


def dashboard_queries() -> list[tuple[str, str]]:
    """(``<dashboard>/<panel>/<ref>``, expression) of every target of every panel."""
    found: list[tuple[str, str]] = []
    for name in DASHBOARDS:
        for panel in model(name)["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{name}/{panel['title']}/{target['refId']}", target["expr"]))
    return found


def resolved(
    expr: str,
    namespace: str = "crypto-mine",
    release: str = "crypto-mine",
    rate_interval: str = "1m",
    period: str = "30d",
) -> str:
    """``expr`` with the dashboard variables replaced as Grafana replaces them."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$period", period)
        .replace("$namespace", namespace)
        .replace("$release", release)
    )
