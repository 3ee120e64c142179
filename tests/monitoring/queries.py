"""Every PromQL query of the generated dashboards."""

from __future__ import annotations

from grafana.dashboards import DASHBOARDS


def dashboard_queries() -> list[tuple[str, str]]:
    """(``<dashboard>/<panel>/<ref>``, expression) of every target of every panel."""
    found: list[tuple[str, str]] = []
    for name, build in DASHBOARDS.items():
        for panel in build().panels():
            for index, target in enumerate(panel.targets):
                found.append((f"{name}/{panel.title}/{chr(ord('A') + index)}", target.expr))
    return found
