"""``operator/rbac.yaml`` grants what the operator needs and nothing more.

The autoscaling tests run the operator with a token of this ServiceAccount, which proves the
rules sufficient; here ``kubectl auth can-i`` shows what they allow and what they refuse.
"""

from __future__ import annotations

import pytest

from .kube import Cluster, rbac_documents

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

QAS = "queueautoscalers.autoscaling.crypto-mine.io"
WORKER = "deployments.apps/crypto-mine-worker"
LEASES = "leases.coordination.k8s.io"
# The release namespace of operator/rbac.yaml, where the leader Lease lives.
RELEASE = "crypto-mine"

ALLOWED = [
    ("list", QAS, None),
    ("watch", QAS, None),
    ("patch", QAS, None),
    ("patch", QAS, "status"),
    ("get", WORKER, "status"),
    ("patch", WORKER, "scale"),
    ("create", "events", None),
    ("create", LEASES, None),
    ("get", f"{LEASES}/crypto-mine-operator", None),
    ("update", f"{LEASES}/crypto-mine-operator", None),
]

DENIED = [
    # Only its own Lease, only in the release namespace (see can_i), never deleted.
    ("get", f"{LEASES}/kube-controller-manager", None),
    ("update", f"{LEASES}/other", None),
    ("delete", f"{LEASES}/crypto-mine-operator", None),
    ("list", LEASES, None),
    # Only the Deployments named in operator.scaleTargets, and only through subresources.
    ("get", "deployments.apps/api", "status"),
    ("patch", "deployments.apps/api", "scale"),
    ("get", WORKER, "scale"),
    ("patch", WORKER, None),
    ("patch", WORKER, "status"),
    ("get", "secrets", None),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("get", "configmaps", None),
    ("get", "deployments.apps", None),
    ("patch", "deployments.apps", None),
    ("delete", "deployments.apps", None),
    ("create", "deployments.apps", None),
    ("update", "deployments.apps", "scale"),
    ("create", "pods", None),
    ("delete", "pods", None),
    ("create", QAS, None),
    ("delete", QAS, None),
    ("update", QAS, None),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("list", "namespaces", None),
    ("create", "serviceaccounts/token", None),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ("patch", "events", None),
    ("delete", "events", None),
]


def can_i(
    cluster: Cluster, account: tuple[str, str], verb: str, resource: str, sub: str | None
) -> bool:
    namespace, name = account
    argv = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{namespace}:{name}"]
    where = RELEASE if resource.startswith(LEASES) else "some-team"
    argv += ["--all-namespaces"] if verb in ("list", "watch") else ["-n", where]
    if sub:
        argv.append(f"--subresource={sub}")
    result = cluster.kubectl(*argv, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i: {result.stdout}{result.stderr}"
    return answer == "yes"


@pytest.mark.parametrize(("verb", "resource", "sub"), ALLOWED)
def test_the_operator_may(
    cluster: Cluster, operator_account: tuple[str, str], verb: str, resource: str, sub: str | None
) -> None:
    assert can_i(cluster, operator_account, verb, resource, sub)


@pytest.mark.parametrize(("verb", "resource", "sub"), DENIED)
def test_the_operator_may_not(
    cluster: Cluster, operator_account: tuple[str, str], verb: str, resource: str, sub: str | None
) -> None:
    assert not can_i(cluster, operator_account, verb, resource, sub)


def test_leases_only_in_the_release_namespace(
    cluster: Cluster, operator_account: tuple[str, str]
) -> None:
    namespace, name = operator_account
    for verb in ("create", "get", "update"):
        argv = ["auth", "can-i", verb, f"{LEASES}/crypto-mine-operator", "-n", "some-team"]
        result = cluster.kubectl(
            *argv, f"--as=system:serviceaccount:{namespace}:{name}", check=False
        )
        assert result.stdout.strip() == "no", verb


def test_rules_are_the_ones_listed_here() -> None:
    """A new rule in operator/rbac.yaml must come with its can-i checks above."""
    rules = [
        rule
        for doc in rbac_documents()
        if doc["kind"] in ("ClusterRole", "Role")
        for rule in doc["rules"]
    ]
    granted = {
        (
            verb,
            (resource if not group else f"{resource.split('/')[0]}.{group}")
            + (f"/{name}" if name else ""),
            resource.partition("/")[2] or None,
        )
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [None]
    }
    assert granted == set(ALLOWED)
