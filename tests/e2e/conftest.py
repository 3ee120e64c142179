"""Fixtures on a real Kubernetes API server.

The cluster is the session's (``tests/support/cluster.py``): the one in ``KUBECONFIG`` when set,
else a local control plane started for this session.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import pytest

from devstack.servers import Process, free_port, serving, wait_until

from .kube import (
    BIN,
    CRD,
    PLURAL,
    Cluster,
    KubectlError,
    queue_autoscaler,
    rbac_documents,
    service_account_of,
    token_kubeconfig,
    worker_deployment,
)

__all__ = ["queue_autoscaler", "worker_deployment"]
from .prometheus import PrometheusServer, QueueDepthExporter

QAS = f"{PLURAL}.autoscaling.crypto-mine.io"


@pytest.fixture(scope="session")
def cluster(kubeconfig: Path) -> Cluster:
    return Cluster(kubeconfig)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> str:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{QAS}", "--timeout=30s")
    return QAS


@pytest.fixture(scope="session")
def apps(cluster: Cluster) -> Iterator[kubernetes.client.AppsV1Api]:
    client = cluster.client()
    yield kubernetes.client.AppsV1Api(client)
    client.close()


@pytest.fixture(scope="session")
def operator_account(cluster: Cluster, crd: str) -> tuple[str, str]:
    """``operator/rbac.yaml`` applied as is: (namespace, name) of its ServiceAccount."""
    docs = rbac_documents()
    namespace, name = service_account_of(docs)
    cluster.kubectl("create", "namespace", namespace, check=False)
    cluster.apply(*docs)
    return namespace, name


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: Cluster, operator_account: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig holding a TokenRequest token of the operator's ServiceAccount."""
    namespace, name = operator_account
    token = cluster.kubectl(
        "create", "token", name, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    return token_kubeconfig(cluster, token, tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture
def namespace(cluster: Cluster, crd: str) -> Iterator[str]:
    name = f"e2e-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    # The operator's finalizer stays on QueueAutoscalers deleted while it was not running.
    listed = cluster.kubectl("get", QAS, "-n", name, "-o", "name", check=False).stdout.split()
    for qa in listed:
        cluster.kubectl(
            "patch", qa, "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
            check=False,
        )  # fmt: skip
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class RunningOperator:
    process: Process
    metrics_port: int
    health_port: int

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")

    def leads(self) -> bool:
        """This replica's ``crypto_mine_operator_leader`` gauge says it leads."""
        return "crypto_mine_operator_leader 1.0" in self.metrics()


@pytest.fixture
def start_operator(
    cluster: Cluster, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., RunningOperator]]:
    """Start ``crypto-mine-operator`` as its ServiceAccount, watching the test's namespace."""
    running: list[RunningOperator] = []

    def start(**env: str) -> RunningOperator:
        metrics_port, health_port = free_port(), free_port()
        environ = {
            **os.environ,
            "KUBECONFIG": str(operator_kubeconfig),
            "WATCH_NAMESPACE": namespace,
            "METRICS_PORT": str(metrics_port),
            "LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
            # One operator per test unless a test elects a leader (test_e2e_leader.py).
            "LEADER_ELECTION": "false",
            **env,
        }
        log = tmp_path / f"operator-{len(running)}.log"
        process = Process("operator", [str(BIN / "crypto-mine-operator")], log, environ).start()
        operator = RunningOperator(process, metrics_port, health_port)
        running.append(operator)

        def healthy() -> bool:
            if not process.alive():
                raise AssertionError(f"the operator exited:\n{operator.log()[-3000:]}")
            url = f"http://127.0.0.1:{health_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return int(response.status) == 200

        try:
            wait_until(healthy, 30, "operator liveness endpoint")
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{operator.log()[-3000:]}") from error
        return operator

    yield start
    # Delete the QueueAutoscalers while the operator runs, so it releases its finalizer.
    with contextlib.suppress(KubectlError):
        cluster.kubectl("delete", QAS, "--all", "-n", namespace, "--timeout=20s")
    for operator in running:
        operator.process.stop()


@pytest.fixture(scope="session")
def exporter() -> Iterator[QueueDepthExporter]:
    yield from serving(QueueDepthExporter())


@pytest.fixture(scope="session")
def prometheus(
    exporter: QueueDepthExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("prometheus")
    yield from serving(PrometheusServer(folder, [f"127.0.0.1:{exporter.port}"]))
