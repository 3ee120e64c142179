"""The prometheus-adapter rule shipped for mode hpa, run as the adapter runs it on a real
Prometheus: its series query finds the queue depth, its metrics query (templated as the adapter
does) answers the sum for the HPA's namespace only, under the name the chart's HPA asks for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devstack.generate import CHART
from tests.e2e.kube import eventually
from tests.e2e.prometheus import PrometheusServer, QueueDepthExporter

from .test_chart_render import by_kind, render

VALUES = CHART / "files" / "prometheus-adapter-values.yaml"
NAMESPACE = "crypto-mine"


def rule() -> dict[str, Any]:
    rules: list[dict[str, Any]] = yaml.safe_load(VALUES.read_text())["rules"]["external"]
    assert len(rules) == 1
    return rules[0]


def expand(template: str, series: str, matchers: str, group_by: str) -> str:
    """prometheus-adapter's Go-template fields of a metricsQuery."""
    return (
        template.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", group_by)
    )


@pytest.fixture(scope="module")
def labelled_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusServer, QueueDepthExporter]]:
    exporter = QueueDepthExporter().start()
    server = PrometheusServer(
        tmp_path_factory.mktemp("adapter"), [f"127.0.0.1:{exporter.port}"], {"namespace": NAMESPACE}
    ).start()
    yield server, exporter
    server.stop()
    exporter.stop()


def test_the_rule_serves_the_metric_the_hpa_asks_for() -> None:
    hpa = by_kind(render("--set", "autoscaling.mode=hpa"), "HorizontalPodAutoscaler")[0]
    external = hpa["spec"]["metrics"][0]["external"]
    assert rule()["name"]["as"] == external["metric"]["name"] == "mining_click_queue_depth"
    assert rule()["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}
    values = yaml.safe_load(VALUES.read_text())
    assert values["rules"]["default"] is False
    assert set(values["prometheus"]) == {"url", "port"}


def test_the_queries_answer_on_a_real_prometheus(
    labelled_prometheus: tuple[PrometheusServer, QueueDepthExporter],
) -> None:
    prometheus, exporter = labelled_prometheus
    exporter.set(1234)
    series = eventually(
        lambda: prometheus.api("series", **{"match[]": rule()["seriesQuery"]}),
        30,
        "the series query finding the scraped depth",
    )
    assert [s["__name__"] for s in series] == ["mining_click_queue_depth"]
    assert series[0]["namespace"] == NAMESPACE
    for group_by in ("", "namespace"):
        ours = expand(
            rule()["metricsQuery"], "mining_click_queue_depth", f'namespace="{NAMESPACE}"', group_by
        )
        assert prometheus.query(ours) == 1234
        other = expand(
            rule()["metricsQuery"], "mining_click_queue_depth", 'namespace="other"', group_by
        )
        assert prometheus.query(other) is None
