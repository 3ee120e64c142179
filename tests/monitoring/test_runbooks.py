"""Every runbook command pastes and runs as written: against the chart installed on the test
cluster, read-only commands as they are, the ones that change something with
``--dry-run=server``. Without a node (the control-plane-only cluster), commands that need a
running pod must fail only for that reason, and what ``exec`` would run in the pod runs here.
A cluster with a node (KUBECONFIG) runs them all for real: the fixture alone differs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from devstack.generate import CHART, RUNBOOKS, helm_process, run_helm
from devstack.servers import RedisServer
from tests.support.cluster import kubectl

from .exported import exported_metrics, metric_names
from .runbooks import (
    Outcome,
    Target,
    blocks,
    commands,
    invocations,
    own_part,
    run_commands,
    runbook_pages,
)
from .test_rules import EXPORTER_METRICS, rules

# The dev stores and both exporters, so that every component a runbook names exists; no
# monitoring CRDs on the test cluster.
SETTINGS = (
    "monitoring.serviceMonitor.enabled=false,monitoring.prometheusRule.enabled=false,"
    "monitoring.redisExporter.enabled=true,monitoring.mongodbExporter.enabled=true"
)


def install(kubeconfig: Path, redis_server: RedisServer, values: str) -> Iterator[Target]:
    namespace = f"runbooks-{secrets.token_hex(3)}"
    release = f"rb-{secrets.token_hex(2)}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    try:
        argv = ["-n", namespace, "-f", str(CHART / "ci" / values), "--set", SETTINGS]
        run_helm("install", release, str(CHART), *argv, kubeconfig=kubeconfig, timeout=300)
        # A second revision, so that `helm rollback` has one to go back to.
        run_helm("upgrade", release, str(CHART), *argv, kubeconfig=kubeconfig, timeout=300)
        yield Target(kubeconfig, namespace, release, redis_server.url)
    finally:
        helm_process("uninstall", release, "-n", namespace, kubeconfig=kubeconfig, timeout=300)
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def target(kubeconfig: Path, redis_server: RedisServer) -> Iterator[Target]:
    """The chart in mode operator (dev values): every runbook runs against it."""
    yield from install(kubeconfig, redis_server, "dev-values.yaml")


@pytest.fixture(scope="module")
def hpa_target(kubeconfig: Path, redis_server: RedisServer) -> Iterator[Target]:
    yield from install(kubeconfig, redis_server, "hpa-values.yaml")


def page_script(page: Path) -> str:
    return "\n".join(blocks(own_part(page), "bash"))


@pytest.fixture(scope="module")
def outcomes(target: Target, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every page's commands, run four pages at a time (each waits mostly on the API server)."""
    folder = tmp_path_factory.mktemp("runbooks")
    with ThreadPoolExecutor(4) as pool:
        runs = {
            page.stem: pool.submit(run_commands, page_script(page), target, folder / page.stem)
            for page in runbook_pages()
        }
        return {name: run.result() for name, run in runs.items()}


def check(script: str, outcome: Outcome) -> list[dict[str, Any]]:
    assert outcome.missing == [], f"commands not found: {outcome.missing}\n{outcome.output}"
    assert outcome.failed() == [], outcome.output[-3000:]
    assert len(outcome.calls) >= invocations(script), outcome.output
    return outcome.calls


@pytest.mark.parametrize("page", runbook_pages(), ids=lambda p: p.stem)
def test_runbook_commands_run(page: Path, outcomes: dict[str, Outcome]) -> None:
    script = page_script(page)
    assert commands(script), f"{page.name} has no commands"
    assert check(script, outcomes[page.stem])


@pytest.mark.parametrize("values", ["operator", "hpa"])
def test_pausing_and_requeueing_run_in_both_modes(
    values: str, target: Target, hpa_target: Target, tmp_path: Path
) -> None:
    # Without the block that shows how to set NAMESPACE and RELEASE: the test sets them.
    script = "\n".join(
        block
        for block in blocks((RUNBOOKS / "README.md").read_text(), "bash")
        if not all(line.startswith(("NAMESPACE=", "RELEASE=")) for line in commands(block))
    )
    chosen = target if values == "operator" else hpa_target
    calls = check(script, run_commands(script, chosen, tmp_path))
    patched = [c for c in calls if "patch" in c["argv"]]
    # Exactly one of the two autoscaler commands finds its object and patches it.
    assert len(patched) == 1, calls
    target_kind = "queueautoscaler" if values == "operator" else "horizontalpodautoscaler"
    assert any(arg.startswith(f"{target_kind}.") for arg in patched[0]["argv"]), patched
    assert any(c["argv"][-2:] == ["requeue", "--all"] for c in calls)


def test_every_runbook_has_both_common_actions() -> None:
    for page in runbook_pages():
        text = page.read_text()
        assert '"paused":true' in text, page.name
        assert "crypto-mine-queue requeue --all" in text, page.name


@pytest.mark.parametrize("page", runbook_pages(), ids=lambda p: p.stem)
def test_runbook_queries_parse_and_name_real_metrics(page: Path) -> None:
    known = exported_metrics() | EXPORTER_METRICS
    known |= {rule["record"] for rule in rules() if "record" in rule}
    for block in blocks(page.read_text(), "promql"):
        for query in commands(block):
            promql_parser.parse(query)
            assert metric_names(query) <= known, f"{page.name}: {query}"
