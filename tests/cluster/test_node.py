"""The node: Ready, the project's images in its runtime, Service names and addresses in pods."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.support.cluster import Cluster
from tests.support.images import reference
from tests.support.release import wait_for

from .conftest import NODE

# Runs inside a pod: resolve each name, then open a TCP connection to the first.
PROBE = """
import json, socket, sys
names = sys.argv[1:]
found = {name: socket.gethostbyname(name) for name in names}
socket.create_connection((names[0], 443), timeout=5).close()
print(json.dumps(found))
"""


def run_pod(cluster: Cluster, namespace: str, *argv: str) -> str:
    """Run ``argv`` in a pod of the api image (restricted, as the chart runs it); its output."""
    name = f"probe-{secrets.token_hex(3)}"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "probe",
                    "image": reference("api"),
                    "imagePullPolicy": "Never",
                    "command": list(argv),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.apply(pod)

    def finished() -> str | None:
        phase = cluster.get("pod", name, namespace)["status"].get("phase")
        return phase if phase in {"Succeeded", "Failed"} else None

    phase = wait_for(finished, 120, f"pod {name} to finish")
    logs = cluster.kubectl("logs", name, "-n", namespace).stdout
    assert phase == "Succeeded", logs
    return logs


def test_node_is_ready_with_the_projects_images(cluster: Cluster) -> None:
    node = cluster.get("node", NODE, "default")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.20.2"
    assert info["containerRuntimeVersion"].startswith("containerd://")
    # An image whose tag moved to a newer build while the runtime ran is listed without names.
    listed = node["status"]["images"]
    images = {name for image in listed for name in image.get("names") or ()}
    for name in ("api", "worker", "id-allocator", "operator", "redis", "mongodb"):
        assert reference(name) in images
    assert not node["spec"].get("taints"), "the lifecycle controller lifts the not-ready taint"


def test_service_names_resolve_and_route_inside_pods(cluster: Cluster) -> None:
    namespace = f"dns-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "named", "namespace": namespace},
                "spec": {"ports": [{"port": 80}], "selector": {"app": "none"}},
            }
        )
        address = cluster.get("service", "named", namespace)["spec"]["clusterIP"]
        names = [
            "kubernetes.default.svc",
            "named",
            f"named.{namespace}",
            f"named.{namespace}.svc",
            f"named.{namespace}.svc.cluster.local",
        ]
        # dnsmasq learns a new Service within a moment: retry the pod until it resolves.
        found = wait_for(
            lambda: json.loads(run_pod(cluster, namespace, "python", "-c", PROBE, *names)),
            90,
            "Service names resolving in a pod",
            every=2,
        )
        kubernetes = cluster.get("service", "kubernetes", "default")["spec"]["clusterIP"]
        assert found == {names[0]: kubernetes} | {name: address for name in names[1:]}
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
