"""A real Prometheus (Debian's package) scraping an exporter the test controls."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from crypto_mine.common.names import Metrics
from devstack.servers import Process, free_port, wait_until


def ensure_prometheus() -> str:
    """The prometheus binary, installed from Debian when missing (needs root)."""
    found = shutil.which("prometheus")
    if found:
        return found
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
        capture_output=True,
        text=True,
        check=False,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError(
            "prometheus is not installed and `apt-get install prometheus` failed: "
            + (result.stderr or result.stdout)[-2000:]
        )
    return found


class QueueDepthExporter:
    """A prometheus_client endpoint exporting ``mining_click_queue_depth``, set by the test."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(Metrics.queue_depth, "Clicks waiting.", registry=self.registry)
        self.port = free_port()
        self.server: WSGIServer | None = None

    def start(self) -> QueueDepthExporter:
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return self

    def set(self, value: float) -> None:
        self.gauge.set(value)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class PrometheusServer(Process):
    """Prometheus on a free port, scraping ``targets`` every second (with ``labels`` added)."""

    def __init__(
        self, folder: Path, targets: list[str], labels: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        static = {"targets": targets, **({"labels": labels} if labels else {})}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "e2e", "static_configs": [static]}],
        }
        config_file = folder / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        argv = [
            ensure_prometheus(),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        super().__init__(f"prometheus:{self.port}", argv, folder / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        super().start()
        wait_until(self._ready, 30, self.name)
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
            return int(response.status) == 200

    def query(self, promql: str) -> float | None:
        """The value of an instant query returning one sample, or None when it returns none."""
        result = self.api("query", query=promql)["result"]
        return float(result[0]["value"][1]) if result else None

    def api(self, endpoint: str, **params: str) -> Any:
        """The ``data`` of an HTTP API call, e.g. ``api("series", **{"match[]": ...})``."""
        url = f"{self.url}/api/v1/{endpoint}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return json.load(response)["data"]
