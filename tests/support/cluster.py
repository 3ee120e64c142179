"""A Kubernetes API server for tests: the one in ``KUBECONFIG``, else the local control plane.

``local_cluster()`` yields the kubeconfig path; when it had to start the control plane with
``scripts/cluster.sh up`` it stops it again afterwards (unless CRYPTO_MINE_KEEP_CLUSTER is set).
When neither works it fails with the reason: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
KUBECTL = Path(sys.executable).parent / "kubectl"


def ready(kubeconfig: Path) -> bool:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=15,
        check=False,
    )
    return result.returncode == 0


@contextlib.contextmanager
def local_cluster() -> Iterator[Path]:
    configured = os.environ.get("KUBECONFIG")
    if configured:
        path = Path(configured.split(os.pathsep)[0])
        if not ready(path):
            pytest.fail(f"KUBECONFIG={configured} is set but its API server is not ready (/readyz)")
        yield path
        return
    was_up = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, check=False)
    result = subprocess.run(
        [str(CLUSTER_SH), "up"], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            "no Kubernetes API server: KUBECONFIG is not set and `scripts/cluster.sh up` failed:\n"
            + result.stderr[-3000:]
        )
    try:
        yield Path(result.stdout.strip().splitlines()[-1])
    finally:
        if was_up.returncode != 0 and not os.environ.get("CRYPTO_MINE_KEEP_CLUSTER"):
            subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, check=False)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """Path of a kubeconfig whose API server is ready (see ``local_cluster``)."""
    with local_cluster() as path:
        yield path


def kubectl(
    kubeconfig: Path, *argv: str, check: bool = True, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(argv)} exited {result.returncode}: {result.stderr}"
        )
    return result
