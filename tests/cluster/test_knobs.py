"""Every component's own knobs on real pods: its ServiceAccount (created under a name of ours, or
one that exists already), Secrets that exist already, resources and replicas."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from functools import partial

import pytest

from devstack.generate import HelmError
from tests.support.cluster import Cluster
from tests.support.release import SECRET, Release, auth, wait_for

from .conftest import new_release, remove

pytestmark = pytest.mark.timeout(600)
# component -> its values key
COMPONENTS = {
    "api": "api",
    "worker": "worker",
    "id-allocator": "idAllocator",
    "operator": "operator",
}


@pytest.fixture(scope="module")
def knobbed(cluster: Cluster) -> Iterator[Release]:
    release = new_release(cluster, "knobs")
    cluster.kubectl("create", "namespace", release.namespace)
    # ServiceAccounts and one Secret that exist before the release.
    for component in ("api", "id-allocator"):
        cluster.kubectl("create", "serviceaccount", f"own-{component}", "-n", release.namespace)
    stores = {
        "jwt": SECRET,
        "mongodb-uri": f"mongodb://{release.full('mongodb')}:27017/?directConnection=true",
        "redis-url": f"redis://{release.full('redis')}:6379/0",
        "id-allocator-token": "knobs-own-id-allocator-token-0123456789abcdef",
    }
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "own-secrets", "namespace": release.namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in stores.items()},
        }
    )
    sets = [
        # Existing ServiceAccounts for two components, chart-made ones named by us for two.
        "api.serviceAccount.create=false", "api.serviceAccount.name=own-api",
        "idAllocator.serviceAccount.create=false",
        "idAllocator.serviceAccount.name=own-id-allocator",
        "worker.serviceAccount.name=named-worker", "operator.serviceAccount.name=named-operator",
        # Every value read through the existing Secret.
        "secrets.jwt.existingSecret=own-secrets", "secrets.jwt.key=jwt",
        "secrets.mongodb.existingSecret=own-secrets", "secrets.redis.existingSecret=own-secrets",
        "secrets.idAllocatorToken.existingSecret=own-secrets",
        # Replicas and resources of each.
        "api.replicaCount=1", "idAllocator.replicaCount=1", "autoscaling.mode=none",
        "worker.replicaCount=2",
        # The operator watching every namespace: a ClusterRole and its binding.
        "operator.watchNamespace=*",
    ]  # fmt: skip
    for component, key in COMPONENTS.items():
        cpu = 10 + len(component)  # a distinct value per component
        sets += [f"{key}.resources.requests.cpu={cpu}m", f"{key}.resources.limits.memory=300Mi"]
    release.install(*sets)
    yield release
    try:
        remove(release)
    except HelmError:  # the last test uninstalled it
        cluster.kubectl("delete", "namespace", release.namespace, "--wait=false", check=False)


def pod_spec(release: Release, component: str) -> dict[str, object]:
    spec: dict[str, object] = release.ready_pods(component)[0]["spec"]
    return spec


def test_service_accounts_of_each_component(knobbed: Release) -> None:
    expected = {
        "api": "own-api",
        "id-allocator": "own-id-allocator",
        "worker": "named-worker",
        "operator": "named-operator",
    }
    for component, account in expected.items():
        assert pod_spec(knobbed, component)["serviceAccountName"] == account, component
    accounts = knobbed.kubectl("get", "serviceaccounts", "-o", "name").split()
    assert "serviceaccount/named-worker" in accounts
    assert "serviceaccount/named-operator" in accounts
    assert f"serviceaccount/{knobbed.full('api')}" not in accounts, "not created when told so"


def test_existing_secrets_feed_every_component(knobbed: Release) -> None:
    secrets = knobbed.kubectl("get", "secrets", "-o", "name").split()
    assert f"secret/{knobbed.full('').rstrip('-')}" not in secrets, "no chart Secret needed"
    answer = knobbed.http.post(
        f"{knobbed.api_url}/api/mining/click", headers={**auth("knob"), "Idempotency-Key": "k"}
    )
    assert answer.status_code == 202, answer.text

    def applied() -> bool:
        with knobbed.mongo() as database:
            return database["balances"].find_one({"_id": "knob"}) is not None

    wait_for(applied, 90, "the click applied through the existing Secret's URLs")


def has_ready(release: Release, component: str, count: int) -> bool:
    return len(release.ready_pods(component)) == count


def test_replicas_and_resources_of_each_component(knobbed: Release) -> None:
    # The operator: its default two replicas, one leading, both Ready.
    replicas = {"api": 1, "id-allocator": 1, "worker": 2, "operator": 2}
    for component, count in replicas.items():
        wait_for(partial(has_ready, knobbed, component, count), 120, f"{count} Ready {component}")
        container = pod_spec(knobbed, component)["containers"][0]  # type: ignore[index]
        resources = container["resources"]
        assert resources["requests"]["cpu"] == f"{10 + len(component)}m", component
        assert resources["limits"]["memory"] == "300Mi", component


def test_uninstall_leaves_no_cluster_wide_rbac(knobbed: Release) -> None:
    selector = f"app.kubernetes.io/instance={knobbed.name}"
    cluster_wide = "clusterroles,clusterrolebindings"
    assert knobbed.cluster.kubectl("get", cluster_wide, "-l", selector, "-o", "name").stdout
    knobbed.helm("uninstall", knobbed.name, "--wait", "--timeout", "2m", timeout=180)
    left = knobbed.cluster.kubectl("get", cluster_wide, "-l", selector, "-o", "name").stdout
    assert left.split() == []
