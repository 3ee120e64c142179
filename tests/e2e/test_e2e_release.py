"""The chart's pre-delete hook (``python -m crypto_mine.operator.release``) on a real API server:
it deletes the release's QueueAutoscalers, lets a running operator release them, and takes the
operator's finalizer off itself when no operator is there; other QueueAutoscalers stay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from crypto_mine.operator.spec import FINALIZER

from .conftest import QAS, RunningOperator, queue_autoscaler, worker_deployment
from .kube import Cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INSTANCE = "app.kubernetes.io/instance"
SELECTOR = f"{INSTANCE}=doomed"
# The one Deployment name operator/rbac.yaml lets the operator scale.
TARGET = "crypto-mine-worker"
SPEC = {
    "scaleTargetRef": {"name": TARGET},
    "minReplicas": 1,
    "maxReplicas": 2,
    "metric": {"source": "redis"},
    "targetDepthPerReplica": 100,
}


def autoscaler(name: str, instance: str, finalizer: bool) -> dict[str, Any]:
    document = queue_autoscaler(name, SPEC)
    document["metadata"]["labels"] = {INSTANCE: instance}
    if finalizer:
        document["metadata"]["finalizers"] = [FINALIZER]
    return document


def present(cluster: Cluster, namespace: str) -> set[str]:
    listed = cluster.kubectl("get", QAS, "-n", namespace, "-o", "name").stdout.split()
    return {name.rpartition("/")[2] for name in listed}


def run_hook(cluster: Cluster, namespace: str, timeout: float) -> str:
    """The hook as the chart runs it; its log (JSON lines on stdout)."""
    result = subprocess.run(
        [sys.executable, "-m", "crypto_mine.operator.release", f"--namespace={namespace}",
         f"--selector={SELECTOR}", f"--timeout={timeout:g}"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_without_an_operator_the_hook_takes_the_finalizer_off_itself(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        autoscaler("held", "doomed", finalizer=True),
        autoscaler("free", "doomed", finalizer=False),
        autoscaler("other", "another-release", finalizer=True),
        namespace=namespace,
    )
    log = run_hook(cluster, namespace, timeout=1)
    assert f"finalizer of QueueAutoscaler {namespace}/held removed (no operator)" in log
    assert f"2 QueueAutoscaler(s) of {SELECTOR} in {namespace} deleted" in log
    eventually(lambda: present(cluster, namespace) == {"other"}, 10, "only 'other' left")
    other = cluster.get(QAS, "other", namespace)["metadata"]
    assert other.get("finalizers") == [FINALIZER]
    assert not other.get("deletionTimestamp")


def test_with_an_operator_the_hook_lets_it_release_its_autoscaler(
    cluster: Cluster, namespace: str, start_operator: Callable[..., RunningOperator]
) -> None:
    start_operator()
    cluster.apply(
        worker_deployment(TARGET, 1),
        autoscaler("worker", "doomed", finalizer=False),
        namespace=namespace,
    )

    def finalized() -> bool:
        metadata = cluster.get(QAS, "worker", namespace)["metadata"]
        return FINALIZER in (metadata.get("finalizers") or [])

    eventually(finalized, 30, "the operator's finalizer on the QueueAutoscaler")
    log = run_hook(cluster, namespace, timeout=30)
    assert "removed (no operator)" not in log
    assert f"1 QueueAutoscaler(s) of {SELECTOR} in {namespace} deleted" in log
    assert present(cluster, namespace) == set()
