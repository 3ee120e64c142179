"""The local stack as real processes, the operator on a real API server, and a real Prometheus
scraping all of them under the job names the chart's ServiceMonitors give them."""

from __future__ import annotations

import json
import os
import secrets
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.generate import CHART, rule_file, run_helm
from devstack.servers import (
    BIN,
    MongoServer,
    Process,
    RedisServer,
    free_port,
    port_open,
    wait_until,
)
from tests.support.allocator import TOKEN as ALLOCATOR_TOKEN
from tests.support.cluster import ROOT, kubectl
from tests.support.debian import installed

CRD = ROOT / "charts" / "crypto-mine" / "crds" / "queueautoscalers.yaml"


def chart_rules(release: str, namespace: str, *settings: str) -> str:
    """The rule file of the chart's PrometheusRule for ``release`` in ``namespace``, with the
    dev values and ``settings`` (``path=<JSON value>`` each)."""
    argv = ["template", release, str(CHART), "--namespace", namespace]
    argv += ["-f", str(CHART / "ci" / "dev-values.yaml")]
    for setting in ("monitoring.prometheusRule.enabled=true", *settings):
        argv += ["--set-json", setting]
    return rule_file(run_helm(*argv))


def alert_names(rules: str) -> set[str]:
    return {
        rule["alert"]
        for group in yaml.safe_load(rules)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def ensure_prometheus() -> str:
    return installed("prometheus")


class Prometheus(Process):
    """Prometheus on a free port, scraping and evaluating every second; jobs: name -> (target,
    metrics path); ``labels`` go on every target (as a ServiceMonitor's ``namespace`` does);
    ``rules``: a rule file to load."""

    def __init__(
        self,
        folder: Path,
        jobs: dict[str, tuple[str, str]],
        labels: dict[str, str] | None = None,
        rules: Path | None = None,
    ) -> None:
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": path,
                    "static_configs": [{"targets": [target], "labels": labels or {}}],
                }
                for job, (target, path) in jobs.items()
            ],
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [
            ensure_prometheus(),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        super().__init__(f"prometheus:{self.port}", argv, folder / "prometheus.log")

    def start(self) -> Prometheus:
        super().start()
        wait_until(lambda: self._get("/-/ready") is not None, 30, self.name)
        return self

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as answer:
            body = answer.read()
        return json.loads(body) if path.startswith("/api/") else body

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups loaded, with each rule's query and state."""
        answer = self._get("/api/v1/rules")
        assert answer["status"] == "success", answer
        groups: list[dict[str, Any]] = answer["data"]["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now."""
        answer = self._get("/api/v1/alerts")
        assert answer["status"] == "success", answer
        found: list[dict[str, Any]] = answer["data"]["alerts"]
        return found

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (raises on a query Prometheus rejects)."""
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "worker", "image": "crypto-mine-worker:live"}]},
            },
        },
    }


def queue_autoscaler(name: str, target: str, metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling.crypto-mine.io/v1alpha1",
        "kind": "QueueAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metric": metric,
            "pollIntervalSeconds": 1,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0, "maxStepPods": 1}},
        },
    }


@dataclass
class LiveStack:
    folder: Path
    kubeconfig: Path | None = None
    started: list[Process] = field(default_factory=list)
    namespace: str = field(default_factory=lambda: f"live-{secrets.token_hex(4)}")
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    ports: dict[str, int] = field(default_factory=dict)
    with_operator: bool = True
    api_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def _start(self, process: Process, port: int) -> None:
        self.processes[process.name] = process
        self.started.append(process.start())
        wait_until(lambda: port_open(port) or not process.alive(), 30, process.name)
        assert process.alive(), f"{process.name} exited: {process.log.read_text()[-3000:]}"

    def start(self) -> LiveStack:
        redis = RedisServer(self.folder / "redis").start()
        self.started.append(redis)
        mongo = MongoServer(self.folder / "mongo").start()
        self.started.append(mongo)
        self.redis, self.mongo = redis, mongo
        self.redis_url = redis.url
        for name in ("api", "worker", "id-allocator", "id-allocator-metrics", "operator", "health"):
            self.ports[name] = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            "REDIS_URL": redis.url,
            "MONGODB_URI": mongo.uri,
            "MONGODB_DB": "live",
            "JWT_SECRET": self.jwt_secret,
            "ID_ALLOCATOR_TOKEN": ALLOCATOR_TOKEN,
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        self.env = env
        logs = self.folder / "logs"
        allocator = {
            **env,
            "PORT": str(self.ports["id-allocator"]),
            "ID_METRICS_PORT": str(self.ports["id-allocator-metrics"]),
        }
        self._start(
            Process(
                "id-allocator", [str(BIN / "crypto-mine-id-allocator")], logs / "id.log", allocator
            ),
            self.ports["id-allocator"],
        )
        worker = {
            **env,
            "WORKER_METRICS_PORT": str(self.ports["worker"]),
            "MINING_WORKER_CONCURRENCY": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(self.folder / "worker-metrics"),
        }
        self._start(
            Process("worker", [str(BIN / "crypto-mine-worker")], logs / "worker.log", worker),
            self.ports["worker"],
        )
        api = {
            **env,
            **self.api_env,
            "PORT": str(self.ports["api"]),
            "ID_ALLOCATOR_URL": f"http://127.0.0.1:{self.ports['id-allocator']}",
        }
        self._start(
            Process("api", [str(BIN / "crypto-mine-api")], logs / "api.log", api), self.ports["api"]
        )
        if self.with_operator:
            self._start_operator(logs)
        return self

    def _start_operator(self, logs: Path) -> None:
        assert self.kubeconfig is not None, "the operator needs an API server"
        kubectl(self.kubeconfig, "apply", "-f", str(CRD))
        kubectl(
            self.kubeconfig, "wait", "--for=condition=Established", "--timeout=30s",
            "crd/queueautoscalers.autoscaling.crypto-mine.io",
        )  # fmt: skip
        kubectl(self.kubeconfig, "create", "namespace", self.namespace)
        closed = free_port()
        docs = [
            deployment("crypto-mine-worker", 3),
            deployment("unread", 2),
            queue_autoscaler("crypto-mine-worker", "crypto-mine-worker", {"source": "redis"}),
            queue_autoscaler(
                "unread",
                "unread",
                {"source": "prometheus", "prometheusUrl": f"http://127.0.0.1:{closed}"},
            ),
            queue_autoscaler("missing", "missing", {"source": "redis"}),
        ]
        kubectl(
            self.kubeconfig, "apply", "-n", self.namespace, "-f", "-",
            stdin="\n---\n".join(json.dumps(d) for d in docs),
        )  # fmt: skip
        operator = {
            **self.env,
            "KUBECONFIG": str(self.kubeconfig),
            "WATCH_NAMESPACE": self.namespace,
            "METRICS_PORT": str(self.ports["operator"]),
            "LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.ports['health']}/healthz",
            "METRIC_TIMEOUT": "0.5",
            "LEASE_NAMESPACE": self.namespace,
        }
        self._start(
            Process(
                "operator", [str(BIN / "crypto-mine-operator")], logs / "operator.log", operator
            ),
            self.ports["operator"],
        )

    def scrape_jobs(self, fullname: str = "crypto-mine") -> dict[str, tuple[str, str]]:
        """Job name -> (target, path), the job named as the chart's ServiceMonitors name it for
        a release whose full name is ``fullname``."""

        def at(name: str) -> str:
            return f"127.0.0.1:{self.ports[name]}"

        jobs = {
            f"{fullname}-api": (at("api"), "/api/metrics"),
            f"{fullname}-worker": (at("worker"), "/metrics"),
            f"{fullname}-id-allocator": (at("id-allocator-metrics"), "/metrics"),
        }
        if self.with_operator:
            jobs[f"{fullname}-operator"] = (at("operator"), "/metrics")
        return jobs

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        if not self.with_operator or self.kubeconfig is None:
            return
        kubeconfig = self.kubeconfig
        for qa in kubectl(
            kubeconfig, "get", "queueautoscalers", "-n", self.namespace, "-o", "name",
            check=False,
        ).stdout.split():  # fmt: skip
            kubectl(
                kubeconfig, "patch", qa, "-n", self.namespace, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        kubectl(kubeconfig, "delete", "namespace", self.namespace, "--wait=false", check=False)
