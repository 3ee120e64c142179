"""A release of the chart on the one-node cluster: helm, pods, Services, and a client of the api.

The node reaches Services at their cluster addresses (kube-proxy's rules apply to this host's
own connections too), so tests talk to the api, Redis and MongoDB Services directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis
import yaml
from pymongo import MongoClient

from devstack.generate import CHART, run_helm

from .cluster import Cluster

LOCAL_VALUES = CHART / "ci" / "local-values.yaml"
SECRET = yaml.safe_load(LOCAL_VALUES.read_text())["secrets"]["jwt"]["value"]
COMPONENTS = ("api", "worker", "id-allocator", "operator", "redis", "mongodb")


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """``check()``'s first truthy result within ``timeout`` seconds, else TimeoutError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as error:
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s (last: {last!r})")


@dataclass
class Release:
    cluster: Cluster
    name: str
    namespace: str

    # --- helm ---------------------------------------------------------------------------------

    def helm(self, *argv: str, timeout: float = 300) -> str:
        """helm's output of ``argv`` in the release's namespace; HelmError when it fails."""
        kubeconfig = self.cluster.kubeconfig
        return run_helm("-n", self.namespace, *argv, kubeconfig=kubeconfig, timeout=timeout)

    def install(self, *sets: str, values: Path = LOCAL_VALUES) -> str:
        return self.helm(
            "upgrade", "--install", self.name, str(CHART), "--create-namespace", "-f",
            str(values), *self._sets(sets), "--wait", "--timeout", "4m",
        )  # fmt: skip

    def upgrade(self, *sets: str, values: Path = LOCAL_VALUES, reuse: bool = True) -> str:
        extra = ["--reuse-values"] if reuse else ["-f", str(values)]
        return self.helm(
            "upgrade", self.name, str(CHART), *extra, *self._sets(sets), "--wait",
            "--timeout", "4m",
        )  # fmt: skip

    @staticmethod
    def _sets(sets: tuple[str, ...]) -> list[str]:
        return [arg for value in sets for arg in ("--set", value)]

    def revision(self) -> int:
        history = json.loads(self.helm("history", self.name, "-o", "json"))
        return int(history[-1]["revision"])

    # --- objects ------------------------------------------------------------------------------

    def full(self, component: str) -> str:
        return f"{self.name}-crypto-mine-{component}"

    def kubectl(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        return self.cluster.kubectl(
            "-n", self.namespace, *argv, check=check, timeout=timeout
        ).stdout

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get(kind, name, self.namespace)

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        listed = json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json"))
        return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(component) if ready(p)]

    def replicas(self, component: str) -> int:
        return int(self.get("deployment", self.full(component))["spec"].get("replicas") or 0)

    def rolled_out(self, component: str, timeout: float = 180) -> None:
        self.kubectl(
            "rollout", "status", f"deployment/{self.full(component)}", f"--timeout={timeout:.0f}s",
            timeout=timeout + 10,
        )  # fmt: skip

    def cluster_ip(self, component: str) -> str:
        return str(self.get("service", self.full(component))["spec"]["clusterIP"])

    # --- clients ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.cluster_ip('api')}:8080"

    @cached_property
    def http(self) -> httpx.Client:
        """One client for the release's tests (a client per request costs ~0.1 s of TLS setup)."""
        return httpx.Client(timeout=10)

    def close(self) -> None:
        if "http" in self.__dict__:
            self.http.close()

    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.cluster_ip("redis"), port=6379, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=5)  # fmt: skip

    @contextmanager
    def mongo(self) -> Iterator[Any]:
        client: MongoClient[dict[str, Any]] = MongoClient(
            f"mongodb://{self.cluster_ip('mongodb')}:27017/?directConnection=true",
            serverSelectionTimeoutMS=5000,
        )
        try:
            yield client["crypto_mine"]
        finally:
            client.close()


def ready(pod: dict[str, Any]) -> bool:
    """Whether a pod (or any object with a Ready condition, a node too) is Ready."""
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def token(user: str) -> str:
    """A token the release's api accepts (the local values' JWT secret)."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}
