"""A Kubernetes API server for tests: the one in ``KUBECONFIG``, else a local control plane.

One per test session (the ``kubeconfig`` fixture in ``tests/conftest.py``); nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""

    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(argv)} exited {result.returncode}: {result.stderr}")
        self.stderr = result.stderr


@dataclass
class Cluster:
    """One cluster reached through a kubeconfig file."""

    kubeconfig: Path

    def kubectl(
        self, *argv: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(argv, result)
        return result

    def apply(
        self, *docs: Mapping[str, Any], namespace: str | None = None, validate: bool = True
    ) -> None:
        """``kubectl apply``; ``validate=False`` leaves all checking to the API server."""
        argv = ["apply", "-f", "-"]
        argv += ["-n", namespace] if namespace else []
        argv += [] if validate else ["--validate=false"]
        self.kubectl(*argv, stdin="\n---\n".join(json.dumps(d) for d in docs))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        result = self.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded

    def events(self, namespace: str, kind: str = "QueueAutoscaler") -> list[dict[str, Any]]:
        result = self.kubectl(
            "get", "events", "-n", namespace, "-o", "json",
            "--field-selector", f"involvedObject.kind={kind}",
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
        return items

    def ready(self) -> bool:
        return self.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0


@contextlib.contextmanager
def local_cluster(state: Path) -> Iterator[Path]:
    """The cluster of ``KUBECONFIG``, else a local control plane with its state in ``state``.

    A control plane started here is this session's own (nobody else's run can stop it, nor it
    theirs) and is stopped at the end. When neither works, the test fails with the reason.
    """
    configured = os.environ.get("KUBECONFIG")
    if configured:
        path = Path(configured.split(os.pathsep)[0])
        if not Cluster(path).ready():
            pytest.fail(f"KUBECONFIG={configured} is set but its API server is not ready (/readyz)")
        yield path
        return
    env = {**os.environ, "CLUSTER_DIR": str(state)}
    result = subprocess.run(
        [str(CLUSTER_SH), "up"], capture_output=True, text=True, timeout=900, check=False, env=env
    )
    try:
        if result.returncode != 0:
            pytest.fail(
                "no Kubernetes API server: KUBECONFIG is not set and `scripts/cluster.sh up` "
                "failed:\n" + result.stderr[-3000:]
            )
        yield Path(result.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, check=False, env=env)


def kubectl(
    kubeconfig: Path, *argv: str, check: bool = True, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return Cluster(kubeconfig).kubectl(*argv, stdin=stdin, check=check, timeout=timeout)
