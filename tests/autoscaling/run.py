"""The autoscaling experiment: a square wave and a ramp of clicks against the real operator on
a real API server (``QueuePlant``: a queue model whose worker pods run on the cluster's node, or
on a simulated one where it has none; see plant.py), recorded, then the same arrivals replayed
on a model of the plant under this operator's decision, the HPA algorithm as mode hpa renders
it, and KEDA's defaults (controllers.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import redis

from crypto_mine.common.names import Metrics
from crypto_mine.operator.decision import Policy, StepRule
from devstack.servers import BIN, Process, RedisServer, free_port, wait_until
from tests.e2e.kube import worker_deployment
from tests.e2e.prometheus import PrometheusServer
from tests.support.cluster import Cluster
from tests.support.images import reference
from tests.support.release import ready

from .controllers import Autoscaler, Hpa, Keda, Operator, ScalingPolicy, ScalingRules
from .load import Phase, Ramp, SquareWave
from .plant import Plant, QueuePlant, World
from .replay import replay
from .trace import Measures, Sample, measure

TARGET = "crypto-mine-worker"
# Pods of the experiment: 50 clicks/s each, Ready 3 s after the autoscaler asks for them.
SIMULATED = World(per_pod=50, startup=3)
# The chart's ServiceMonitor scrape interval: how old the HPA's and KEDA's depth can be.
SCRAPE_INTERVAL = 30.0


@dataclass(frozen=True)
class Setup:
    world: World = SIMULATED
    target: int = 100  # targetDepthPerReplica
    min_replicas: int = 1
    max_replicas: int = 10
    poll: int = 2  # pollIntervalSeconds
    up_step: int = 4
    down_window: int = 60
    drain_seconds: int | None = 20  # targetDrainSeconds
    rate_window: int = 10  # seconds of the drain-rate query's rate()
    phases: tuple[Phase, ...] = field(
        default=(
            SquareWave(low=40, high=400, high_for=90, period=180, cycles=2),
            Ramp(low=40, high=450, rise=150, hold=30, fall=150),
        )
    )

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.phases)

    def arrivals(self, t: float) -> float:
        for phase in self.phases:
            if t < phase.duration:
                return phase(t)
            t -= phase.duration
        return self.phases[-1](float("inf"))

    def policy(self, drain: bool = True) -> Policy:
        return Policy(
            self.min_replicas,
            self.max_replicas,
            self.target,
            StepRule(0, self.up_step),
            StepRule(self.down_window, None),
            self.poll,
            target_drain_seconds=self.drain_seconds if drain else None,
        )

    def queue_autoscaler(self, prometheus_url: str) -> dict[str, Any]:
        drain = {} if self.drain_seconds is None else {"targetDrainSeconds": self.drain_seconds}
        return {
            "apiVersion": "autoscaling.crypto-mine.io/v1alpha1",
            "kind": "QueueAutoscaler",
            "metadata": {"name": "worker"},
            "spec": {
                "scaleTargetRef": {"name": TARGET},
                "minReplicas": self.min_replicas,
                "maxReplicas": self.max_replicas,
                "metric": {
                    "source": "redis",
                    "prometheusUrl": prometheus_url,
                    "drainRateQuery": (
                        f"sum(rate({Metrics.worker_processed}[{self.rate_window}s]))"
                    ),
                },
                "targetDepthPerReplica": self.target,
                **drain,
                "pollIntervalSeconds": self.poll,
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPods": self.up_step},
                    "scaleDown": {"stabilizationWindowSeconds": self.down_window},
                },
            },
        }

    def autoscalers(self) -> list[tuple[Autoscaler, float]]:
        """Each replayed autoscaler with the scale-down window its downs are counted in."""
        chart_hpa = Hpa(
            self.min_replicas,
            self.max_replicas,
            self.target,
            up=ScalingRules(0, (ScalingPolicy("Pods", self.up_step, 15),)),
            down=ScalingRules(self.down_window, (ScalingPolicy("Percent", 100, 15),)),
            name="hpa (mode hpa, same values)",
            metric_delay=SCRAPE_INTERVAL,
        )
        keda = Keda(self.max_replicas, self.target, name="keda (defaults)")
        return [
            (Operator(self.policy(), name="operator (replayed)"), self.down_window),
            (Operator(self.policy(drain=False), name="operator, depth only"), self.down_window),
            (
                Operator(
                    self.policy(),
                    name="operator via Prometheus",
                    metric_delay=SCRAPE_INTERVAL,
                ),
                self.down_window,
            ),
            (chart_hpa, self.down_window),
            (keda, keda.hpa.down.window),
        ]


@dataclass(frozen=True)
class Sandbox:
    """Where one live run happens: its plant, namespace, Redis and Prometheus."""

    plant: Plant
    namespace: str
    redis_url: str
    prometheus_url: str
    real_node: bool  # the worker pods run on the cluster's node


def has_node(cluster: Cluster) -> bool:
    """Whether a real node is Ready to run pods (not a simulated one of an earlier run)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return any(not node["metadata"]["name"].startswith("sim-") and ready(node) for node in nodes)


@contextlib.contextmanager
def sandbox(folder: Path, kubeconfig: Path, setup: Setup) -> Iterator[Sandbox]:
    """A namespace with the worker Deployment (its pods on the cluster's node, else on a
    simulated one), a Redis, the queue model, and a Prometheus scraping the queue's
    applied-clicks counter every second."""
    cluster = Cluster(kubeconfig)
    namespace = f"autoscaling-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    server = RedisServer(folder / "redis").start()
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    store = redis.Redis.from_url(server.url)
    real = has_node(cluster)
    print(f"worker pods: {'on the node' if real else 'on a simulated node'}", flush=True)
    try:
        image = reference("worker") if real else None
        cluster.apply(worker_deployment(TARGET, setup.min_replicas, image), namespace=namespace)
        plant = QueuePlant(
            client, namespace, TARGET, store, setup.world, simulated_node=not real
        ).start()
        prometheus = PrometheusServer(folder / "prometheus", [f"127.0.0.1:{plant.metrics_port}"])
        try:
            prometheus.start()
            yield Sandbox(plant, namespace, server.url, prometheus.url, real)
        finally:
            prometheus.stop()
            plant.stop()
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        store.close()
        client.close()
        server.stop()


def run_live(
    folder: Path, kubeconfig: Path, setup: Setup, duration: float | None = None
) -> list[Sample]:
    """Drive the load through the real operator; a sample every 0.25 s."""
    cluster = Cluster(kubeconfig)
    crd = Path(__file__).resolve().parents[2] / "charts/crypto-mine/crds/queueautoscalers.yaml"
    cluster.kubectl("apply", "-f", str(crd))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s",
        "crd/queueautoscalers.autoscaling.crypto-mine.io",
    )  # fmt: skip
    with sandbox(folder, kubeconfig, setup) as box:
        box.plant.set_arrivals(setup.arrivals(0))
        operator = start_operator(folder, kubeconfig, box)
        try:
            cluster.apply(setup.queue_autoscaler(box.prometheus_url), namespace=box.namespace)

            def reading() -> bool:
                qa = cluster.get("queueautoscaler", "worker", box.namespace)
                return any(
                    c["type"] == "ScalingActive" and c["status"] == "True"
                    for c in (qa.get("status") or {}).get("conditions", [])
                )

            wait_until(reading, 60, "the operator reading the queue")
            ready = setup.min_replicas
            wait_until(lambda: box.plant.sample(0).ready >= ready, 120, f"{ready} pod(s) Ready")
            return drive(box.plant, setup, setup.duration if duration is None else duration)
        finally:
            operator.stop()


def start_operator(folder: Path, kubeconfig: Path, box: Sandbox) -> Process:
    """The operator as the chart runs it (leader election on), watching the run's namespace."""
    health = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": box.namespace,
        "REDIS_URL": box.redis_url,
        "METRIC_URL_ALLOWLIST": box.prometheus_url,
        "LEASE_NAMESPACE": box.namespace,
        "METRICS_PORT": str(free_port()),
        "LIVENESS_ENDPOINT": f"http://127.0.0.1:{health}/healthz",
    }
    operator = Process(
        "operator", [str(BIN / "crypto-mine-operator")], folder / "operator.log", env
    )
    operator.start()

    def leading() -> bool:
        url = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=1) as response:
            return b"crypto_mine_operator_leader 1.0" in response.read()

    wait_until(leading, 60, "the operator leading")
    return operator


def drive(plant: Plant, setup: Setup, duration: float, dt: float = 0.25) -> list[Sample]:
    samples: list[Sample] = []
    start = time.monotonic()
    while (t := time.monotonic() - start) < duration:
        plant.set_arrivals(setup.arrivals(t))
        samples.append(plant.sample(t))
        time.sleep(max(0.0, start + len(samples) * dt - time.monotonic()))
    return samples


def compare(live: Sequence[Sample], setup: Setup) -> dict[str, Measures]:
    """The live run's measures, and those of each autoscaler replayed on its arrivals."""
    results = {
        "operator (live)": measure(live, setup.target, setup.down_window, setup.max_replicas)
    }
    for autoscaler, window in setup.autoscalers():
        trace = replay(live, autoscaler, setup.world)
        results[autoscaler.name] = measure(trace, setup.target, window, setup.max_replicas)
    return results


def table(results: dict[str, Measures]) -> str:
    """A Markdown table: one column per autoscaler."""
    rows = {name: m.summary() for name, m in results.items()}
    keys = list(next(iter(rows.values())))
    lines = ["| | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(str(r[k]) for r in rows.values()) + " |" for k in keys]
    return "\n".join(lines)


def write_report(folder: Path, live: Sequence[Sample], results: dict[str, Measures]) -> Path:
    path = folder / "report.json"
    body = {name: m.summary() for name, m in results.items()}
    path.write_text(json.dumps({"samples": len(live), "results": body}, indent=2) + "\n")
    return path
