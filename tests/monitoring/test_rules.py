"""Alert rules: promtool, SPEC §7's names and thresholds, runbooks, tests, and the chart's copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.generate import ALERTS, CHART, CHART_ALERTS, ROOT, template

from .exported import exported_metrics, metric_names

TESTS = ROOT / "prometheus" / "tests.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/crypto-mine/crypto-mine/blob/main/docs/runbooks/"
SEED_ALERTS = {
    "MiningQueueBackpressure": ("mining_click_queue_depth > 4500", "2m", "warning"),
    "MiningWorkerFailures": ("rate(mining_worker_failed_total[5m]) > 5", "3m", "critical"),
    "MiningApi429Spike": (
        'sum(rate(mining_click_requests_total{status="429"}[5m])) / '
        "sum(rate(mining_click_requests_total[5m])) > 0.05",
        "5m",
        "warning",
    ),
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "prometheus"], check=True)
        found = shutil.which("promtool")
    assert found, "promtool missing: scripts/ensure-apt.sh prometheus"
    return found


def rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_once_and_stays_silent_once() -> None:
    firing: dict[str, int] = {}
    silent: dict[str, int] = {}
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            bucket = firing if check["exp_alerts"] else silent
            bucket[check["alertname"]] = bucket.get(check["alertname"], 0) + 1
    names = {rule["alert"] for rule in rules()}
    assert set(firing) == names, names ^ set(firing)
    assert set(silent) == names, names ^ set(silent)


def test_seed_alerts_are_exact() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for name, (expr, duration, severity) in SEED_ALERTS.items():
        rule = by_name[name]
        assert " ".join(rule["expr"].split()) == expr
        assert rule["for"] == duration
        assert rule["labels"]["severity"] == severity


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_is_complete_and_has_a_runbook(rule: dict[str, Any]) -> None:
    assert rule["for"]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    url = annotations["runbook_url"]
    assert url.startswith(RUNBOOK_BASE)
    runbook = RUNBOOKS / url.removeprefix(RUNBOOK_BASE)
    assert runbook.is_file(), f"{rule['alert']}: no {runbook.relative_to(ROOT)}"
    assert runbook.read_text().startswith(f"# {rule['alert']}\n")


def test_alerts_name_only_exported_metrics() -> None:
    exported = exported_metrics()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - exported
        assert unknown == set(), f"{rule['alert']} names unexported metrics {unknown}"


def test_every_runbook_is_linked() -> None:
    linked = {rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE) for rule in rules()}
    present = {p.name for p in RUNBOOKS.glob("*.md")}
    assert present - linked == {"mining-overload.md"}
    assert (RUNBOOKS / "mining-overload.md").read_text().startswith("# Mining overload\n")


def test_chart_rule_is_built_from_the_same_file() -> None:
    assert CHART_ALERTS.read_text() == ALERTS.read_text(), "run `make generate`"
    base = "https://runbooks.example.com/crypto-mine/"
    values = CHART / "ci" / "dev-values.yaml"
    docs = [
        d
        for d in yaml.safe_load_all(
            template(values, "--set", f"monitoring.prometheusRule.runbookBaseUrl={base}")
        )
        if d and d["kind"] == "PrometheusRule"
    ]
    expected = yaml.safe_load(ALERTS.read_text().replace(RUNBOOK_BASE, base))["groups"]
    assert docs[0]["spec"]["groups"] == expected

    def group_names(settings: str) -> list[str]:
        rendered = yaml.safe_load_all(template(values, "--set", settings))
        [rule] = [d for d in rendered if d and d["kind"] == "PrometheusRule"]
        return [g["name"] for g in rule["spec"]["groups"]]

    every = [g["name"] for g in expected]
    # Another release's operator serves the QueueAutoscaler: its absence still alerts here.
    assert group_names("operator.enabled=false,autoscaling.externalOperator=true") == [
        n for n in every if n != "crypto-mine-operator"
    ]
    # No QueueAutoscaler to serve: no autoscaling group.
    assert group_names("operator.enabled=false,autoscaling.mode=keda") == [
        n for n in every if n not in ("crypto-mine-operator", "crypto-mine-autoscaling")
    ]
