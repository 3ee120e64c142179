"""The dashboards: built with Grafana's foundation SDK, generated, committed, fixed UIDs, the
mining rows, the release variables, queries that parse and name only metrics the services
export, the chart records, or a cluster's kube-state-metrics and cAdvisor give."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import promql_parser
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as GrafanaDashboard

from devstack.generate import CHART, ROOT, RULES, rule_groups, template
from grafana.__main__ import FOLDERS, rendered
from grafana.dashboards import CHART_VALUES, DASHBOARDS, queue_alert_depth

from .exported import exported_metrics, metric_names
from .queries import CLUSTER_METRICS, dashboard_queries, resolved
from .test_rules import by_alert, expr_of, rules

UIDS = {
    "mining": "crypto-mine-mining",
    "id-allocator": "crypto-mine-id-allocator",
    "operator": "crypto-mine-operator",
}
MINING_ROWS = ["Overview", "Queue health", "Success vs failure", "Redis performance"]
VARIABLES = ["datasource", "namespace", "release"]


def load(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((ROOT / "grafana" / "dashboards" / name).read_text())
    return loaded


def test_committed_json_is_generated_sorted_and_indented() -> None:
    for folder in FOLDERS:
        assert sorted(p.name for p in folder.glob("*.json")) == sorted(rendered())
        for name, text in rendered().items():
            assert (folder / name).read_text() == text, f"run `make generate`: {folder / name}"
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_generator_check_mode_reports_drift(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "grafana", "--check", str(tmp_path)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "out of date" in result.stderr
    subprocess.run([sys.executable, "-m", "grafana", str(tmp_path)], cwd=ROOT, check=True)
    assert subprocess.run(argv, cwd=ROOT, check=False).returncode == 0


def test_fixed_uids_and_rows() -> None:
    mining = load("mining.json")
    rows = [p["title"] for p in mining["panels"] if p["type"] == "row"]  # type: ignore[attr-defined]
    assert [row for row in rows if row in MINING_ROWS] == MINING_ROWS
    assert {"SLO", "Workers", "MongoDB"} <= set(rows)
    for name in DASHBOARDS:
        dashboard = load(f"{name}.json")
        ids = [p["id"] for p in dashboard["panels"]]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids))
        assert dashboard["uid"] == UIDS[name]


def backpressure_threshold(*settings: str) -> str:
    """The threshold of MiningQueueBackpressure as helm renders it with the chart's default
    values (ci/default-values.yaml gives only the secrets) and ``settings`` (``path=<JSON
    value>`` each)."""
    argv = ["--set-json", "monitoring.prometheusRule.enabled=true"]
    for setting in settings:
        argv += ["--set-json", setting]
    found = [
        rule
        for group in rule_groups(template(CHART / "ci" / "default-values.yaml", *argv))
        for rule in group["rules"]
    ]
    return expr_of(found, "MiningQueueBackpressure").rsplit(" > ", 1)[1]


def test_queue_depth_line_is_the_backpressure_threshold() -> None:
    """The red line of the queue depth panel is where MiningQueueBackpressure fires: both come
    from api.queueMaxDepth and thresholds.queueDepthRatio of the chart's values."""
    panels = load("mining.json")["panels"]
    (panel,) = [p for p in panels if p["title"] == "Queue depth (clicks)"]  # type: ignore[attr-defined]
    line = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]
    assert line["color"] == "red"
    depth = int(line["value"])
    assert line["value"] == depth == queue_alert_depth()
    assert f"{depth:,}" in panel["description"]
    (alert,) = by_alert(rules(RULES))["MiningQueueBackpressure"]
    assert alert["expr"].endswith(f" > {depth}")
    assert backpressure_threshold() == str(depth)


def test_queue_alert_depth_is_computed_as_the_chart_computes_it(tmp_path: Path) -> None:
    values = yaml.safe_load(CHART_VALUES.read_text())
    values["api"]["queueMaxDepth"] = 1001
    values["monitoring"]["prometheusRule"]["thresholds"]["queueDepthRatio"] = 0.75
    changed = tmp_path / "values.yaml"
    changed.write_text(yaml.safe_dump(values))
    assert queue_alert_depth(changed) == 750
    settings = (
        "api.queueMaxDepth=1001",
        "monitoring.prometheusRule.thresholds.queueDepthRatio=0.75",
    )
    assert backpressure_threshold(*settings) == "750"


def test_release_variables_and_rate_interval() -> None:
    for name in DASHBOARDS:
        variables = load(f"{name}.json")["templating"]["list"]  # type: ignore[index]
        assert [v["name"] for v in variables][:3] == VARIABLES
        assert variables[2]["regex"].endswith(f"-{name if name != 'mining' else 'api'}$/")
    for where, expr in dashboard_queries():
        assert 'namespace="$namespace"' in expr, where
        assert "$release-" in expr, where
        assert "[5m]" not in expr, where
        assert "[1m]" not in expr, where


def test_mining_dashboard_has_slo_replicas_and_pod_resources() -> None:
    queries = "\n".join(expr for where, expr in dashboard_queries() if where.startswith("mining/"))
    for needed in (
        "crypto_mine_slo:error_budget:ratio",
        "crypto_mine_slo:sli_error:ratio_rate1h",
        "crypto_mine_operator_desired_replicas",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_deployment_status_replicas_available",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ):
        assert needed in queries, needed


def test_panels_use_the_datasource_variable() -> None:
    for name in DASHBOARDS:
        for panel in load(f"{name}.json")["panels"]:  # type: ignore[attr-defined]
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            assert panel["description"], panel["title"]


@pytest.mark.parametrize(
    ("where", "expr"), dashboard_queries(), ids=[w for w, _ in dashboard_queries()]
)
def test_query_parses_and_names_known_metrics(where: str, expr: str) -> None:
    promql_parser.parse(resolved(expr))
    names = metric_names(resolved(expr))
    assert names, f"{where}: no metric"
    recorded = {rule["record"] for rule in rules(RULES) if "record" in rule}
    unknown = names - exported_metrics() - recorded - CLUSTER_METRICS
    assert unknown == set(), f"{where} names unknown metrics {unknown}"


def test_unknown_metric_is_caught() -> None:
    assert metric_names("sum(rate(mining_clicks_totl[5m]))") - exported_metrics() == {
        "mining_clicks_totl"
    }
    with pytest.raises(ValueError, match=r"."):
        promql_parser.parse("sum(rate(x[5m])")


def contained(part: object, whole: object) -> bool:
    """Whether every key and value of ``part`` is in ``whole`` (which may hold more)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contained(value, whole[key]) for key, value in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(contained(a, b) for a, b in zip(part, whole, strict=True))
        )
    return part == whole


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_grafana_types_read_the_json_back(name: str) -> None:
    """The generated JSON is a dashboard by Grafana's own schema: the SDK's models read it
    (panels by their plugin types) and write it back with nothing lost."""
    register_default_plugins()
    text = (ROOT / "grafana" / "dashboards" / f"{name}.json").read_text()
    read = GrafanaDashboard.from_json(json.loads(text))
    again = json.loads(JSONEncoder().encode(read))
    assert contained(json.loads(text), again)
    assert len(read.panels or []) == len(json.loads(text)["panels"])
    assert not contained({"uid": "something-else"}, again)
