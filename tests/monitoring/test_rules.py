"""Alert and recording rules: promtool, default thresholds, runbooks, the values they follow,
selectors that keep releases apart, and rules that stay out for parts that are switched off."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from devstack.generate import CHART, PRODUCTION_VALUES, ROOT, RULES, rule_groups, run_helm
from tests.support.debian import installed

from .exported import exported_metrics, metric_names

TESTS = ROOT / "prometheus" / "tests.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/crypto-mine/crypto-mine/blob/main/docs/runbooks/"
# Alerts as the default values render them: (metric, threshold, for, severity).
DEFAULT_ALERTS = {
    "MiningQueueBackpressure": ("mining_click_queue_depth", "> 4500", "2m", "warning"),
    "MiningWorkerFailures": ("mining_worker_failed_total", "> 5", "3m", "critical"),
    "MiningApi429Spike": ("mining_click_requests_total", "> 0.05", "5m", "warning"),
    "MiningApiLatencyHigh": ("http_request_duration_seconds_bucket", "> 0.5", "10m", "warning"),
    "MiningApiErrorRate": ("http_requests_total", "> 0.01", "5m", "warning"),
    "MiningStatusCacheHitRateLow": (
        "mining_status_cache_requests_total",
        "< 0.7",
        "15m",
        "warning",
    ),
}
# Series of the optional exporters (redis_exporter 1.45+, mongodb_exporter).
EXPORTER_METRICS = {
    "redis_up",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_evicted_keys_total",
    "redis_instance_info",
    "redis_aof_last_write_status",
    "redis_aof_enabled",
    "mongodb_up",
}
EVERYTHING = (
    "monitoring.prometheusRule.enabled=true",
    "monitoring.redisExporter.enabled=true",
    "monitoring.mongodbExporter.enabled=true",
)


def promtool() -> str:
    return installed("promtool", "prometheus")


def rules(path: Path = RULES) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for rule in rules(path) if "alert" in rule]


def rendered(
    *settings: str, release: str = "crypto-mine", namespace: str = "crypto-mine"
) -> list[dict[str, Any]]:
    """The rules of the chart's PrometheusRule with the production values and ``settings``
    (``path=<JSON value>`` each)."""
    argv = ["template", release, str(CHART), "--namespace", namespace]
    argv += ["-f", str(PRODUCTION_VALUES)]
    for setting in (*EVERYTHING, *settings):
        argv += ["--set-json", setting]
    return [rule for group in rule_groups(run_helm(*argv)) for rule in group["rules"]]


def by_alert(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    for rule in found:
        if "alert" in rule:
            named.setdefault(rule["alert"], []).append(rule)
    return named


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
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


def test_every_rule_is_tested() -> None:
    """Every alert fires in a test and stays silent in another; every recording is checked."""
    firing: set[str] = set()
    silent: set[str] = set()
    checked: list[str] = []
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
        for check in case.get("promql_expr_test", []):
            checked += [sample["labels"] for sample in check["exp_samples"]]
    names = {rule["alert"] for rule in alerts()}
    assert firing == names, names ^ firing
    assert silent == names, names ^ silent
    recorded = {
        f'__name__="{rule["record"]}", slo="{rule["labels"]["slo"]}"'
        for rule in rules()
        if "record" in rule
    }
    untested = {r for r in recorded if not any(r in labels for labels in checked)}
    assert untested == set()
    assert len(recorded) == 4 * 9


def test_alerts_keep_their_default_thresholds() -> None:
    named = by_alert(alerts())
    for name, (metric, threshold, duration, severity) in DEFAULT_ALERTS.items():
        (rule,) = named[name]
        assert metric in metric_names(rule["expr"])
        assert rule["expr"].endswith(f" {threshold}") or f" {threshold} and " in rule["expr"]
        assert rule["for"] == duration
        assert rule["labels"]["severity"] == severity


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['for']}")
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


def test_rules_name_only_exported_or_recorded_metrics() -> None:
    known = exported_metrics() | EXPORTER_METRICS
    known |= {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert unknown == set(), f"{rule.get('alert', rule.get('record'))} names {unknown}"


def test_every_runbook_is_linked() -> None:
    linked = {rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE) for rule in alerts()}
    present = {p.name for p in RUNBOOKS.glob("mining-*.md")}
    assert present - linked == {"mining-overload.md"}
    assert (RUNBOOKS / "mining-overload.md").read_text().startswith("# Mining overload\n")


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def matchers(selector: promql_parser.VectorSelector) -> dict[str, tuple[str, str]]:
    return {m.name: (str(m.op), m.value) for m in selector.matchers.matchers}


@pytest.mark.parametrize(
    ("release", "namespace", "fullname"),
    [("shop", "prod", "shop-crypto-mine"), ("crypto-mine-eu", "games", "crypto-mine-eu")],
)
def test_every_selector_names_the_release_namespace_and_job(
    release: str, namespace: str, fullname: str
) -> None:
    found = rendered(release=release, namespace=namespace)
    assert len(found) == len(rules())
    for rule in found:
        for selector in selectors(rule["expr"]):
            labels = matchers(selector)
            assert labels["namespace"][1] == namespace, rule["expr"]
            job = labels["job"][1]
            assert all(part.startswith(f"{fullname}-") for part in job.split("|")), rule["expr"]
        if "record" in rule and rule["expr"].startswith("vector("):
            assert (rule["labels"]["namespace"], rule["labels"]["job"]) == (
                namespace,
                f"{fullname}-api",
            )


def expr_of(found: list[dict[str, Any]], alert: str) -> str:
    (rule,) = by_alert(found)[alert]
    return str(rule["expr"])


def test_thresholds_follow_the_values() -> None:
    found = rendered(
        "api.queueMaxDepth=1000",
        "config.jobTimeoutSeconds=300",
        "monitoring.prometheusRule.thresholds.redisMemoryRatio=0.8",
    )
    assert expr_of(found, "MiningQueueBackpressure").endswith(" > 900")
    assert expr_of(found, "MiningOperatorScaleLimited").endswith(" > 900")
    assert expr_of(found, "MiningWorkerLagHigh").endswith(" > 150")
    assert " > 0.8 and " in expr_of(found, "MiningRedisMemoryHigh")
    fixed = rendered("monitoring.prometheusRule.thresholds.workerLagSeconds=45")
    assert expr_of(fixed, "MiningWorkerLagHigh").endswith(" > 45")


def test_slo_objectives_and_windows_follow_the_values() -> None:
    found = rendered(
        "monitoring.slo.clickAvailability.objective=99",
        "monitoring.slo.clickLatency.thresholdSeconds=0.5",
        'monitoring.slo.burnRateAlerts=[{"severity": "critical", "longWindow": "2h", '
        '"shortWindow": "10m", "burnRate": 10, "for": "2m"}, {"severity": "warning", '
        '"longWindow": "1d", "shortWindow": "2h", "burnRate": 3, "for": "1h"}]',
    )
    burns = by_alert(found)["MiningClickAvailabilityBudgetBurn"]
    page = next(r for r in burns if r["labels"]["long"] == "2h")
    assert page["labels"]["short"] == "10m"
    assert page["expr"].count(" > 0.1") == 2  # 10 x (1 - 0.99)
    recorded = {r["record"] for r in found if "record" in r}
    windows = {name.rsplit("_rate", 1)[1] for name in recorded if "_rate" in name}
    assert windows == {"10m", "2h", "1d"}
    latency = [r for r in found if r.get("labels", {}).get("slo") == "click-latency"]
    assert any('le="0.5"' in r["expr"] for r in latency)
    signup = [r for r in found if r.get("labels", {}).get("slo") == "signup-latency"]
    assert any('le="1.0"' in r["expr"] for r in signup)


def test_overrides_disable_relabel_and_retime_alerts() -> None:
    found = rendered(
        "monitoring.prometheusRule.disabled.MiningApi429Spike=true",
        "monitoring.prometheusRule.customRules.MiningWorkerDown="
        '{"for": "1m", "severity": "warning"}',
        'monitoring.prometheusRule.additionalRuleLabels={"team": "mining"}',
    )
    named = by_alert(found)
    assert "MiningApi429Spike" not in named
    (down,) = named["MiningWorkerDown"]
    assert (down["for"], down["labels"]) == ("1m", {"severity": "warning", "team": "mining"})
    assert all(rule["labels"]["team"] == "mining" for rule in found if "alert" in rule)
    burns = named["MiningClickLatencyBudgetBurn"]
    assert {r["labels"]["severity"] for r in burns} == {"critical", "warning"}


def test_switched_off_parts_have_no_rules_and_no_absent() -> None:
    everything = by_alert(rendered())
    assert "absent(" in expr_of(rendered(), "MiningWorkerDown")
    scaled_to_zero = rendered("autoscaling.minReplicas=0")
    assert "absent(" not in expr_of(scaled_to_zero, "MiningWorkerDown")
    fixed_at_zero = rendered('autoscaling.mode="none"', "worker.replicaCount=0")
    assert "absent(" not in expr_of(fixed_at_zero, "MiningWorkerDown")
    no_api = rendered("api.replicaCount=0")
    assert "absent(" not in expr_of(no_api, "MiningApiDown")
    off = by_alert(
        rendered(
            "worker.enabled=false",
            "operator.enabled=false",
            "monitoring.redisExporter.enabled=false",
            "monitoring.mongodbExporter.enabled=false",
        )
    )
    gone = set(everything) - set(off)
    assert gone == {
        "MiningQueueBackpressure",
        "MiningWorkerFailures",
        "MiningWorkerLagHigh",
        "MiningDeadLettersGrowing",
        "MiningWorkerDown",
        "MiningMongoUnreachable",
        "MiningOperatorDown",
        "MiningOperatorMetricErrors",
        "MiningOperatorScaleErrors",
        "MiningOperatorScaleLimited",
        "MiningRedisDown",
        "MiningRedisMemoryHigh",
        "MiningRedisEvicting",
        "MiningRedisEvictionPolicy",
        "MiningRedisAofWriteFailing",
        "MiningMongoDown",
        "MiningExporterDown",
        "MiningAutoscalerNotServed",
    }
    hpa = by_alert(rendered('autoscaling.mode="hpa"'))
    assert set(everything) - set(hpa) == {"MiningOperatorScaleLimited", "MiningAutoscalerNotServed"}
    # Another release's operator serves the QueueAutoscaler: its absence still alerts here.
    external = by_alert(rendered("operator.enabled=false", "autoscaling.externalOperator=true"))
    assert "MiningAutoscalerNotServed" in external
    assert not [a for a in external if a.startswith("MiningOperator")]
    without_api = rendered("api.enabled=false")
    assert not [a for a in by_alert(without_api) if a.startswith(("MiningApi", "MiningClick"))]
    assert "api" not in expr_of(without_api, "MiningMongoSlow").replace("crypto-mine-", "")


def test_the_generated_rule_file_is_the_production_rendering() -> None:
    groups = rule_groups(
        run_helm(
            "template", "crypto-mine", str(CHART), "--namespace", "crypto-mine",
            "-f", str(PRODUCTION_VALUES),
        )
    )  # fmt: skip
    on_disk = yaml.safe_load(RULES.read_text())["groups"]
    assert [g["name"] for g in groups] == [g["name"] for g in on_disk]
    assert [r for g in groups for r in g["rules"]] == [r for g in on_disk for r in g["rules"]]
