"""Secrets the chart generates on ``helm install`` are made once and kept by upgrades.

The rest of the chart's lifecycle on real pods is in tests/cluster.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.generate import CHART, helm_process
from tests.support.cluster import kubectl


def run_helm(kubeconfig: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return helm_process(*argv, kubeconfig=kubeconfig, timeout=300)


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
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
    values = ("-f", str(CHART / "ci" / "local-values.yaml"), "--set", generate)
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
