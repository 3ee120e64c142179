"""A Kubernetes cluster for the e2e tests: kubectl, the Python client, and a service account."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

from tests.support.cluster import BIN, CLUSTER_SH, ROOT, KubectlError
from tests.support.cluster import Cluster as BaseCluster

__all__ = ["BIN", "CLUSTER_SH", "KubectlError"]

CRD = ROOT / "charts/crypto-mine/crds/queueautoscalers.yaml"
RBAC = ROOT / "operator/rbac.yaml"

GROUP = "autoscaling.crypto-mine.io"
VERSION = "v1alpha1"
PLURAL = "queueautoscalers"

_T = TypeVar("_T")


@dataclass
class Cluster(BaseCluster):
    """The shared cluster, with what the e2e tests need beyond kubectl."""

    def server_and_ca(self) -> tuple[str, str]:
        config = yaml.safe_load(self.kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c for c in config["contexts"] if c["name"] == context_name)["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        ca = cluster.get("certificate-authority-data")
        if ca is None and cluster.get("certificate-authority"):
            ca = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
        return str(cluster["server"]), str(ca or "")

    def client(self) -> kubernetes.client.ApiClient:
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig)
        )
        return client


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    """A kubeconfig for the same server that authenticates with ``token``."""
    server, ca = cluster.server_and_ca()
    entry: dict[str, Any] = {"server": server}
    if ca:
        entry["certificate-authority-data"] = ca
    else:
        entry["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": entry}],
        "users": [{"name": "e2e", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def rbac_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def service_account_of(docs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(namespace, name) of the one ServiceAccount in ``operator/rbac.yaml``."""
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 1, f"operator/rbac.yaml must hold one ServiceAccount, has {accounts}"
    return accounts[0]["metadata"]["namespace"], accounts[0]["metadata"]["name"]


def eventually(
    check: Callable[[], _T | None], timeout: float, what: str, interval: float = 0.1
) -> _T:
    """The first truthy result of ``check`` within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    last: _T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.1f}s (last: {last!r})")
        time.sleep(interval)


def worker_deployment(name: str, replicas: int, image: str | None = None) -> dict[str, Any]:
    """A Deployment of which only the replicas matter.

    Without ``image`` its Pods stay Pending (unless a simulated node runs them,
    tests/autoscaling/plant.py): they name a scheduler nobody runs, so a cluster with a real
    node leaves them alone too. With ``image`` (one of the project's, loaded into the node),
    the node runs them for real: a process that waits for SIGTERM, Ready once it started.
    """
    labels = {"app.kubernetes.io/name": name}
    if image is None:
        pod: dict[str, Any] = {
            "schedulerName": "crypto-mine-unscheduled",
            "containers": [{"name": "worker", "image": "crypto-mine-worker:e2e"}],
        }
    else:
        term = "{signal.SIGTERM}"
        wait = (
            f"import signal; signal.pthread_sigmask(signal.SIG_BLOCK, {term}); "
            f"signal.sigwait({term})"
        )
        pod = {
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "worker",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", wait],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def queue_autoscaler(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling.crypto-mine.io/v1alpha1",
        "kind": "QueueAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    }
