"""The one-node cluster of the test session, and releases of the chart on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.release import Release, wait_for

NODE = "crypto-mine-node"


@pytest.fixture(scope="session")
def cluster(kubeconfig: Path) -> Cluster:
    """The session's cluster, once its node is Ready (scripts/cluster.sh waits for it)."""
    found = Cluster(kubeconfig)
    wait_for(
        lambda: (
            "True"
            in found.kubectl(
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
            ).stdout
        ),
        120,
        "a Ready node",
    )
    return found


def new_release(cluster: Cluster, prefix: str) -> Release:
    return Release(cluster, f"{prefix}-{secrets.token_hex(2)}", f"{prefix}-{secrets.token_hex(3)}")


def remove(release: Release) -> None:
    """Uninstall (hooks included) and delete the namespace, whatever state the test left."""
    release.close()
    release.helm("uninstall", release.name, "--wait", "--timeout", "2m", timeout=180)
    release.cluster.kubectl("delete", "namespace", release.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    """One release for a module's tests, installed by the first of them."""
    installed = new_release(cluster, "cm")
    yield installed
    try:
        remove(installed)
    except Exception:
        installed.cluster.kubectl(
            "delete", "namespace", installed.namespace, "--wait=false", check=False
        )
