"""``helm install`` onto a real API server (pods stay Pending without a kubelet), ``helm test``'s
hook pod, and a clean ``helm uninstall``, in operator mode and in HPA mode."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from devstack.generate import CHART, helm, helm_env
from tests.support.cluster import kubectl

NAMESPACED = "deployments,replicasets,pods,services,secrets,serviceaccounts,configmaps," + (
    "networkpolicies,poddisruptionbudgets,horizontalpodautoscalers,roles,rolebindings,"
    "queueautoscalers"
)
# The in-cluster dev stores, no monitoring CRDs on the local API server.
OVERRIDES = (
    "monitoring.serviceMonitor.enabled=false,monitoring.prometheusRule.enabled=false,"
    "monitoring.dashboards.enabled=true"
)


def run_helm(
    kubeconfig: Path, *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), "--kubeconfig", str(kubeconfig), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=helm_env(),
        check=False,
    )


def names(kubeconfig: Path, kinds: str, namespace: str, release: str) -> list[str]:
    out = kubectl(
        kubeconfig, "get", kinds, "-n", namespace, "-o", "name",
        "-l", f"app.kubernetes.io/instance={release}",
    ).stdout  # fmt: skip
    return out.split()


@pytest.fixture
def namespace(kubeconfig: Path) -> object:
    name = f"chart-{secrets.token_hex(4)}"
    kubectl(kubeconfig, "create", "namespace", name)
    # The chart generates secrets only where it can read the cluster: the namespace's default
    # ServiceAccount, which the controller manager creates a moment after the namespace.
    deadline = time.monotonic() + 30
    while kubectl(kubeconfig, "get", "sa", "default", "-n", name, check=False).returncode:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.2)
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("values", "autoscaler"),
    [("dev-values.yaml", "queueautoscalers"), ("hpa-values.yaml", "horizontalpodautoscalers")],
)
def test_install_test_hook_and_uninstall(
    kubeconfig: Path, namespace: str, values: str, autoscaler: str
) -> None:
    release = f"cm-{secrets.token_hex(3)}"
    installed = run_helm(
        kubeconfig, "install", release, str(CHART), "-n", namespace,
        "-f", str(CHART / "ci" / values), "--set", OVERRIDES,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    try:
        deployments = names(kubeconfig, "deployments", namespace, release)
        expected = {"api", "worker", "id-allocator"}
        expected |= {"operator", "redis", "mongodb"} if values == "dev-values.yaml" else set()
        assert {d.rsplit("-crypto-mine-", 1)[1] for d in deployments} == expected
        scalers = names(kubeconfig, autoscaler, namespace, release)
        assert len(scalers) == 1
        if autoscaler == "queueautoscalers":
            qa = json.loads(
                kubectl(kubeconfig, "get", scalers[0], "-n", namespace, "-o", "json").stdout
            )
            assert qa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
            assert qa["spec"]["metric"]["source"] == "redis"
        hook_pod = f"{release}-crypto-mine-test-readyz"
        # No kubelet: the hook pod never runs, so `helm test` times out; it must exist meanwhile.
        test = subprocess.Popen(
            [helm(), "--kubeconfig", str(kubeconfig), "test", release, "-n", namespace,
             "--timeout", "20s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=helm_env(),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            while True:
                found = kubectl(
                    kubeconfig, "get", "pod", hook_pod, "-n", namespace, "-o", "json", check=False
                )
                if found.returncode == 0:
                    break
                assert time.monotonic() < deadline, f"helm test created no pod {hook_pod}"
                time.sleep(0.2)
            pod = json.loads(found.stdout)
            assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        finally:
            test.kill()
            test.wait(10)
    finally:
        removed = run_helm(kubeconfig, "uninstall", release, "-n", namespace, "--wait")
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 60
    while left := names(kubeconfig, NAMESPACED, namespace, release) + [
        p for p in kubectl(kubeconfig, "get", "pods", "-n", namespace, "-o", "name").stdout.split()
    ]:
        assert time.monotonic() < deadline, f"left after helm uninstall: {left}"
        kubectl(kubeconfig, "delete", "pod", f"{release}-crypto-mine-test-readyz", "-n", namespace,
                "--ignore-not-found", "--wait=false")  # fmt: skip
        time.sleep(0.5)
    cluster_wide = kubectl(
        kubeconfig, "get", "clusterroles,clusterrolebindings", "-o", "name",
        "-l", f"app.kubernetes.io/instance={release}",
    ).stdout  # fmt: skip
    assert cluster_wide.split() == []


def stored_secret(kubeconfig: Path, namespace: str, release: str) -> dict[str, str]:
    name = f"{release}-crypto-mine"
    found = kubectl(kubeconfig, "get", "secret", name, "-n", namespace, "-o", "json")
    data: dict[str, str] = json.loads(found.stdout)["data"]
    return data


def test_generated_secrets_are_made_once_and_kept_by_upgrades(
    kubeconfig: Path, namespace: str
) -> None:
    release = f"cm-{secrets.token_hex(3)}"
    generate = "secrets.jwt.value=,secrets.idAllocatorToken.value=,tests.enabled=false"
    values = ("-f", str(CHART / "ci" / "dev-values.yaml"), "--set", f"{OVERRIDES},{generate}")
    installed = run_helm(kubeconfig, "install", release, str(CHART), "-n", namespace, *values)
    assert installed.returncode == 0, installed.stderr
    try:
        first = stored_secret(kubeconfig, namespace, release)
        assert len(base64.b64decode(first["jwt-secret"])) == 48
        assert len(base64.b64decode(first["id-allocator-token"])) == 48
        assert first["jwt-secret"] != first["id-allocator-token"]
        upgraded = run_helm(kubeconfig, "upgrade", release, str(CHART), "-n", namespace, *values)
        assert upgraded.returncode == 0, upgraded.stderr
        assert stored_secret(kubeconfig, namespace, release) == first
    finally:
        run_helm(kubeconfig, "uninstall", release, "-n", namespace, "--wait")
