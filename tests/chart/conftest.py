"""Rendered scenarios of the chart, shared by the chart tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.generate import CHART, template

SCENARIOS = sorted(CHART.glob("ci/*-values.yaml"))


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scenario name -> file holding ``helm template`` of it (hooks and CRDs included)."""
    folder = tmp_path_factory.mktemp("rendered")
    files: dict[str, Path] = {}
    for values in SCENARIOS:
        name = values.name.removesuffix("-values.yaml")
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(template(values, "--include-crds"))
    return files
