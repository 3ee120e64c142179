"""What the autoscaler scales, in the experiment: clicks arriving, worker pods applying them.

``Plant`` is what the experiment needs from it. ``QueuePlant`` is a queue model that applies
``per_pod`` clicks/s per Ready pod of the worker Deployment and writes the depth to Redis, where
the operator reads it. Its pods are real where the cluster has a node (the node starts them
and says when they are Ready); on an API server with no kubelet, ``SimulatedNode`` binds them to
a Node of its own and reports them Ready ``startup`` seconds later. A plant of real workers
applying real clicks implements the same three methods; on two CPUs it could not offer the
backlog that needs several workers (one applies about 2,000 clicks/s, the machine offers the api
about 800).
"""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

import kubernetes
import redis
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter, start_http_server

from crypto_mine.common.names import Keys, Metrics
from devstack.servers import free_port

from .trace import Sample


class Plant(Protocol):
    def set_arrivals(self, rate: float) -> None:
        """Clicks per second from now on."""
        ...

    def sample(self, t: float) -> Sample:
        """The queue and the worker Deployment now (``t``: seconds since the load started)."""
        ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class World:
    """The plant's physics, shared by the live run and the replays."""

    per_pod: float  # clicks/s one Ready worker applies
    startup: float  # seconds from a pod's creation to Ready


# How often the simulated node says it is alive (a kubelet's default status report: 10 s).
HEARTBEAT_SECONDS = 5.0


class SimulatedNode:
    """A kubelet stand-in for one namespace: binds its Pending pods, marks them Ready after
    ``startup`` seconds, and finishes deleting the pods the ReplicaSet removes."""

    def __init__(self, client: kubernetes.client.ApiClient, namespace: str, startup: float):
        self.core = kubernetes.client.CoreV1Api(client)
        self.namespace = namespace
        self.startup = startup
        self.node = f"sim-{namespace}"
        self.seen: dict[str, float] = {}
        self.ready: set[str] = set()
        self.beat = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-node", daemon=True)

    def start(self) -> SimulatedNode:
        node = kubernetes.client.V1Node(metadata=kubernetes.client.V1ObjectMeta(name=self.node))
        try:
            self.core.create_node(node)
        except ApiException as error:
            if error.status != 409:
                raise
        self._heartbeat()
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        """Ready, as of now: a node lifecycle controller marks a node whose heartbeat stops
        unreachable (after 40 s) and its pods not Ready."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"type": "Ready", "status": "True", "reason": "Simulated"}
        status = {"conditions": [{**ready, "lastHeartbeatTime": stamp}]}
        self.core.patch_node_status(self.node, {"status": status})
        self.beat = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        try:
            self.core.delete_node(self.node)
        except ApiException as error:
            if error.status != 404:
                raise

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._tick()
            except ApiException:  # a pod went away between listing and acting on it
                continue

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self.beat >= HEARTBEAT_SECONDS:
            self._heartbeat()
        pods: list[Any] = self.core.list_namespaced_pod(self.namespace).items
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp is not None:
                self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
                self.seen.pop(name, None)
                self.ready.discard(name)
                continue
            first = self.seen.setdefault(name, now)
            if not pod.spec.node_name:
                binding: Any = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                }
                self.core.create_namespaced_binding(self.namespace, binding, _preload_content=False)
            elif name not in self.ready and now - first >= self.startup:
                self.core.patch_namespaced_pod_status(name, self.namespace, _ready_status())
                self.ready.add(name)


def _ready_status() -> dict[str, object]:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"status": "True", "lastTransitionTime": stamp}
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", **ready},
                {"type": "Initialized", **ready},
                {"type": "ContainersReady", **ready},
                {"type": "Ready", **ready},
            ],
        }
    }


class QueuePlant:
    """The queue model on a real API server and a real Redis; ticks every ``dt`` seconds. The
    worker pods run on the cluster's node, or on a ``SimulatedNode`` when ``simulated_node``."""

    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        namespace: str,
        deployment: str,
        store: redis.Redis,
        world: World,
        dt: float = 0.25,
        simulated_node: bool = True,
    ) -> None:
        self.apps = kubernetes.client.AppsV1Api(client)
        self.namespace = namespace
        self.deployment = deployment
        self.redis = store
        self.world = world
        self.dt = dt
        self.node = SimulatedNode(client, namespace, world.startup) if simulated_node else None
        # What the workers would export: clicks applied (for the drain-rate query).
        self.registry = CollectorRegistry()
        self.processed = Counter(
            Metrics.worker_processed, "Clicks applied.", registry=self.registry
        )
        self.metrics_port = free_port()
        self._metrics: WSGIServer | None = None
        self.arrivals = 0.0
        self.depth = 0.0
        self.spec = 0
        self.ready = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-queue", daemon=True)

    def start(self) -> QueuePlant:
        self.redis.set(Keys.queue_depth, 0)
        self._metrics, _ = start_http_server(
            self.metrics_port, addr="127.0.0.1", registry=self.registry
        )
        if self.node is not None:
            self.node.start()
        self._thread.start()
        return self

    def set_arrivals(self, rate: float) -> None:
        with self._lock:
            self.arrivals = rate

    def sample(self, t: float) -> Sample:
        with self._lock:
            return Sample(t, self.arrivals, self.depth, self.spec, self.ready)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.node is not None:
            self.node.stop()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.dt):
            deployment: Any = self.apps.read_namespaced_deployment(self.deployment, self.namespace)
            now = time.monotonic()
            with self._lock:
                elapsed, last = now - last, now
                self.spec = int(deployment.spec.replicas or 0)
                self.ready = int(deployment.status.ready_replicas or 0)
                self.depth += self.arrivals * elapsed
                applied = min(self.depth, self.ready * self.world.per_pod * elapsed)
                self.depth -= applied
                depth = self.depth
            self.processed.inc(applied)
            self.redis.set(Keys.queue_depth, round(depth))
