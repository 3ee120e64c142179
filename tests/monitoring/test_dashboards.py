"""The dashboards: generated, committed, fixed UIDs, the seed's rows, queries that parse and name
only metrics the services export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import promql_parser
import pytest

from devstack.generate import ROOT
from grafana.__main__ import FOLDERS, rendered
from grafana.dashboards import DASHBOARDS

from .exported import exported_metrics, metric_names
from .queries import dashboard_queries

UIDS = {
    "mining": "crypto-mine-mining",
    "id-allocator": "crypto-mine-id-allocator",
    "operator": "crypto-mine-operator",
}
SEED_ROWS = ["Overview", "Queue health", "Success vs failure", "Redis performance"]


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
    assert {name: build().uid for name, build in DASHBOARDS.items()} == UIDS
    mining = load("mining.json")
    rows = [p["title"] for p in mining["panels"] if p["type"] == "row"]  # type: ignore[attr-defined]
    assert rows == SEED_ROWS
    for name in DASHBOARDS:
        dashboard = load(f"{name}.json")
        ids = [p["id"] for p in dashboard["panels"]]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids))
        assert dashboard["uid"] == UIDS[name]


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
def test_query_parses_and_names_exported_metrics(where: str, expr: str) -> None:
    promql_parser.parse(expr)
    names = metric_names(expr)
    assert names, f"{where}: no metric"
    unknown = names - exported_metrics()
    assert unknown == set(), f"{where} names unexported metrics {unknown}"


def test_unknown_metric_is_caught() -> None:
    assert metric_names("sum(rate(mining_clicks_totl[5m]))") - exported_metrics() == {
        "mining_clicks_totl"
    }
    with pytest.raises(ValueError, match=r"."):
        promql_parser.parse("sum(rate(x[5m])")
