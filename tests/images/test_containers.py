"""The images as built by `make images`, run exactly as the chart runs them (tests/support/
containers.py): same user, read-only root filesystem, no capabilities, no privilege escalation,
only the chart's emptyDirs writable, the chart's environment."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from crypto_mine.common.names import Collections
from devstack.servers import MongoServer, RedisServer, free_port
from tests.support.cluster import Cluster
from tests.support.containers import ChartPod, Container, until
from tests.support.images import IMAGES, build_images, inspect, podman, reference

pytestmark = pytest.mark.timeout(900)

CRD = Path(__file__).resolve().parents[2] / "charts/crypto-mine/crds/queueautoscalers.yaml"


@pytest.fixture(scope="session")
def images() -> list[str]:
    """Every image, built by scripts/images.sh (cached layers: seconds when nothing changed)."""
    return build_images()


@pytest.fixture
def containers(tmp_path: Path) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def stores(redis_server: RedisServer, mongo_server: MongoServer, database: str) -> list[str]:
    """Chart values pointing the pods at this test's Redis and MongoDB, on loopback."""
    return [
        "redis.enabled=false",
        "mongodb.enabled=false",
        f"secrets.redis.url={redis_server.url}",
        f"secrets.mongodb.uri={mongo_server.uri}",
        f"config.mongodbDatabase={database}",
    ]


def start(
    containers: list[Container], tmp_path: Path, component: str, *sets: str, **env: str
) -> Container:
    container = Container.run(ChartPod.rendered(component, *sets), tmp_path, env)
    containers.append(container)
    return container


def ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def test_api_and_id_allocator_answer_their_probes(
    images: list[str],
    containers: list[Container],
    tmp_path: Path,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
) -> None:
    common = stores(redis_server, mongo_server, mongo_db)
    allocator_port, api_port = free_port(), free_port()
    allocator = start(
        containers, tmp_path, "id-allocator", *common, f"idAllocator.port={allocator_port}"
    )
    api = start(
        containers, tmp_path, "api", *common, f"api.port={api_port}",
        f"api.idAllocatorUrl=http://127.0.0.1:{allocator_port}",
    )  # fmt: skip
    for port, container in ((allocator_port, allocator), (api_port, api)):
        for probe in ("/healthz", "/readyz"):
            url = f"http://127.0.0.1:{port}{probe}"
            until(partial(ok, url), 60, probe, container)
    print(f"both ready {time.monotonic() - api.started:.1f} s after start")


def test_a_click_goes_through_the_api_and_worker_containers_into_mongodb(
    images: list[str],
    containers: list[Container],
    tmp_path: Path,
    redis_server: RedisServer,
    mongo_server: MongoServer,
    mongo_db: str,
) -> None:
    common = stores(redis_server, mongo_server, mongo_db)
    allocator_port, api_port, metrics_port = free_port(), free_port(), free_port()
    start(containers, tmp_path, "id-allocator", *common, f"idAllocator.port={allocator_port}")
    api = start(
        containers, tmp_path, "api", *common, f"api.port={api_port}",
        f"api.idAllocatorUrl=http://127.0.0.1:{allocator_port}",
    )  # fmt: skip
    worker = start(containers, tmp_path, "worker", *common, f"worker.metricsPort={metrics_port}")
    base = f"http://127.0.0.1:{api_port}"
    until(lambda: ok(f"{base}/readyz"), 60, "api ready", api)
    signed_up = httpx.post(
        f"{base}/api/auth/register",
        json={"username": "container-user", "password": "correct horse battery"},
        timeout=10,
    )
    assert signed_up.status_code == 201, signed_up.text
    headers = {"Authorization": f"Bearer {signed_up.json()['token']}"}
    answer = httpx.post(
        f"{base}/api/mining/click", headers={**headers, "Idempotency-Key": "c1"},
        json={"clicks": 3}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text

    def completed() -> bool:
        status = httpx.get(f"{base}/api/mining/click/status", params={"key": "c1"},
                           headers=headers, timeout=5)  # fmt: skip
        return status.status_code == 200 and status.json()["status"] == "completed"

    until(completed, 60, "click completed", worker)
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.uri)
    try:
        user = signed_up.json()["userId"]
        assert client[mongo_db][Collections.clicks].count_documents({"user": user}) == 1
        assert client[mongo_db][Collections.balances].find_one({"_id": user})["balance"] == 3  # type: ignore[index]
    finally:
        client.close()
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert re.search(r"^mining_worker_processed_total(\{[^}]*\})? [1-9]", metrics, re.M), metrics


def test_operator_starts_against_the_api_server_and_stops_cleanly_on_sigterm(
    images: list[str], containers: list[Container], tmp_path: Path, kubeconfig: Path
) -> None:
    """The image has no `kubernetes` client: kopf's own login and the operator's KubeClient
    reach the API server; the replica takes the Lease, kopf puts its finalizer on a
    QueueAutoscaler and takes it off when it is deleted; SIGTERM hands the Lease back."""
    # The chart's pod reads its ServiceAccount token and CA from files; here the session's
    # kubeconfig stands in, with its CA in a file too (nothing may be written in the container).
    loaded = yaml.safe_load(kubeconfig.read_text())
    for cluster in loaded["clusters"]:
        ca = cluster["cluster"].pop("certificate-authority-data")
        (tmp_path / "ca.crt").write_bytes(base64.b64decode(ca))
        cluster["cluster"]["certificate-authority"] = "/kube/ca.crt"
    (tmp_path / "config").write_text(yaml.safe_dump(loaded))
    for path in (tmp_path / "ca.crt", tmp_path / "config"):
        path.chmod(0o644)
    metrics_port, health_port = free_port(), free_port()
    pod = ChartPod.rendered(
        "operator", f"operator.metricsPort={metrics_port}", f"operator.healthPort={health_port}"
    )
    # The release namespace: the operator watches it and keeps its Lease there.
    api = Cluster(kubeconfig)
    api.kubectl("create", "namespace", pod.namespace, check=False)
    api.kubectl("apply", "-f", str(CRD))
    api.kubectl("wait", "--for=condition=Established", "-f", str(CRD), "--timeout=30s")
    lease = pod.env("")["LEASE_NAME"]
    api.kubectl("delete", "lease", lease, "-n", pod.namespace, "--ignore-not-found")
    name = f"cm-test-operator-{metrics_port}"
    args = pod.run_args(name, {"KUBECONFIG": "/kube/config"})
    mounts = [f"--volume={tmp_path / f}:/kube/{f}:ro" for f in ("config", "ca.crt")]
    podman(*args[:-1], *mounts, args[-1])
    operator = Container(name, tmp_path)
    containers.append(operator)
    until(lambda: ok(f"http://127.0.0.1:{health_port}/healthz"), 90, "the liveness", operator)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    leads = "crypto_mine_operator_leader 1.0"
    until(lambda: leads in httpx.get(metrics, timeout=2).text, 30, "leading", operator)
    qa = f"image-check-{metrics_port}"
    api.apply(
        {
            "apiVersion": "autoscaling.crypto-mine.io/v1alpha1",
            "kind": "QueueAutoscaler",
            "metadata": {"name": qa},
            "spec": {"scaleTargetRef": {"name": "crypto-mine-worker"}, "maxReplicas": 2},
        },
        namespace=pod.namespace,
    )

    def finalizers() -> list[str]:
        found = api.get("queueautoscaler", qa, pod.namespace)["metadata"]
        return list(found.get("finalizers") or [])

    until(finalizers, 30, "kopf's finalizer on the QueueAutoscaler", operator)
    api.kubectl("delete", "queueautoscaler", qa, "-n", pod.namespace, "--timeout=30s")
    started = time.monotonic()
    assert operator.stop(timeout=30) == 0, operator.logs()[-3000:]
    assert time.monotonic() - started < 20, "stopped by SIGTERM, not by the SIGKILL after 30 s"
    assert "released the Lease" in operator.logs()
    assert not api.get("lease", lease, pod.namespace)["spec"].get("holderIdentity")


@pytest.mark.parametrize(
    ("component", "variable", "value"),
    [
        ("api", "MINING_QUEUE_MAX_DEPTH", "lots"),
        ("worker", "MINING_WORKER_CONCURRENCY", "0"),
        ("id-allocator", "ID_ALLOCATOR_MODE", "bogus"),
        ("operator", "METRIC_TIMEOUT", "-1"),
    ],
)
def test_a_bad_setting_stops_the_container_at_once_naming_it(
    images: list[str], containers: list[Container], tmp_path: Path,
    component: str, variable: str, value: str,
) -> None:  # fmt: skip
    container = start(containers, tmp_path, component, **{variable: value})
    code = container.wait_exit(30)
    assert code != 0
    assert variable in container.logs(), container.logs()[-2000:]
    assert time.monotonic() - container.started < 30


@pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])
def test_images_are_labelled_non_root_and_hold_no_tools_caches_or_secrets(
    images: list[str], image: object
) -> None:
    ref = reference(image.name)  # type: ignore[attr-defined]
    found = inspect(ref)
    config = found["Config"]
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.version"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    listing = podman(
        "run", "--rm", "--entrypoint", "sh", ref, "-c",
        "for t in gcc cc c++ make pip pip3 git curl wget; do command -v $t; done;"
        " ls -d /root/.cache /opt/venv/bin/pip* /run/secrets/pip-ca /tmp/wheels /src 2>/dev/null;"
        " ls /opt/venv/lib/python3*/site-packages | grep -iE '^(pip|setuptools)' ; true",
    ).stdout  # fmt: skip
    assert listing.strip() == "", f"found in {ref}: {listing}"


@pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])
def test_each_image_adds_at_most_100_mb_to_its_base(images: list[str], image: object) -> None:
    ref = reference(image.name)  # type: ignore[attr-defined]
    layers = inspect(ref)["RootFS"]["Layers"]
    base = subprocess.run(
        ["scripts/images.sh", "base"], capture_output=True, text=True, check=True, timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()  # fmt: skip
    base_layers = inspect(base)["RootFS"]["Layers"]
    assert layers[: len(base_layers)] == base_layers, "built on the base image"
    added = inspect(ref)["Size"] - inspect(base)["Size"]
    print(f"{ref}: {inspect(ref)['Size'] / 1e6:.0f} MB, {added / 1e6:.0f} MB over {base}")
    assert added <= 100e6, f"{ref} adds {added / 1e6:.0f} MB to its base"


def test_the_same_sources_build_the_same_image(images: list[str]) -> None:
    """Every step built again, twice, without the cache: the very same image (id and layers).
    (Not against a cached build: its layers may come from an earlier commit, whose time the
    files carry.)"""

    def rebuild() -> dict[str, Any]:
        done = subprocess.run(
            ["scripts/images.sh", "build", "worker"], capture_output=True, text=True,
            timeout=1800, cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "NO_CACHE": "1"}, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return inspect(reference("worker"))

    before, after = rebuild(), rebuild()
    assert after["Id"] == before["Id"]
    assert after["RootFS"]["Layers"] == before["RootFS"]["Layers"]
