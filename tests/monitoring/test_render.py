"""The dashboard drawing of the docs (grafana/render.py): a real Prometheus scraping an exporter
the test controls, the generated mining dashboard drawn from it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.servers import wait_until
from grafana.render import (
    RELEASE,
    Prometheus,
    Renderer,
    legend,
    number,
    render,
    threshold_color,
)
from grafana.screenshot import DASHBOARD
from tests.e2e.prometheus import PrometheusServer, QueueDepthExporter

STEPS: list[dict[str, Any]] = [
    {"color": "red", "value": None},
    {"color": "orange", "value": 0.95},
    {"color": "green", "value": 0.99},
]


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[QueueDepthExporter, PrometheusServer]]:
    exporter = QueueDepthExporter().start()
    exporter.set(1234)
    # Labelled as the chart's ServiceMonitors label the worker's metrics, for the release the
    # drawing shows.
    labels = {"namespace": RELEASE["namespace"], "job": f"{RELEASE['release']}-worker"}
    server = PrometheusServer(
        tmp_path / "prometheus", [f"127.0.0.1:{exporter.port}"], labels
    ).start()
    try:
        yield exporter, server
    finally:
        server.stop()
        exporter.stop()


def test_values_are_shown_as_grafana_shows_them() -> None:
    assert legend("{{status}}", {"status": "202"}, "expr") == "202"
    assert legend("p95 {{ route }}", {"route": "/api/x"}, "expr") == "p95 /api/x"
    assert legend("", {}, "sum(rate(x[5m]))") == "sum(rate(x[5m]))"
    assert number(0.987, "percentunit") == "98.7%"
    assert number(0.0421, "s") == "42.1 ms"
    assert number(1234.0, "reqps") == "1,234 req/s"
    assert number(math.nan, "s") == "no data"
    assert threshold_color(STEPS, 0.5) == "#e02f44"
    assert threshold_color(STEPS, 0.96) == "#ff9830"
    assert threshold_color(STEPS, 1.0) == "#56a64b"


def test_the_mining_dashboard_is_drawn_from_prometheus(
    scraped: tuple[QueueDepthExporter, PrometheusServer], tmp_path: Path
) -> None:
    _, server = scraped
    wait_until(lambda: server.query("mining_click_queue_depth") == 1234, 60, "first scrape")
    time.sleep(2)  # a few samples for the range
    dashboard = json.loads(DASHBOARD.read_text())
    end = time.time()
    renderer = Renderer(Prometheus(server.url), end - 60, end, 1)
    [depth] = [p for p in dashboard["panels"] if p["title"] == "Queue depth (clicks)"]
    [(name, times, values)] = renderer.series(depth)
    assert name == "clicks waiting"
    assert values
    assert set(values) == {1234.0}
    assert all(end - 61 <= t <= end + 1 for t in times)

    out = tmp_path / "dashboard.png"
    render(dashboard, renderer, out)  # the panels without data say so; none fails
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    width, height = (int.from_bytes(out.read_bytes()[at : at + 4], "big") for at in (16, 20))
    assert width > 1000
    assert height > 1000
