"""The packages' layout: each declares what it imports, imports itself one way, and depends
only downwards (common <- pipeline <- api, worker, operator; common <- id-allocator)."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Distribution folder -> its package below crypto_mine/.
PACKAGES = {
    "services/common": "common",
    "services/pipeline": "pipeline",
    "services/api": "api",
    "services/worker": "worker",
    "services/id-allocator": "allocator",
    "operator": "operator",
}
# What each package may import of the others.
ALLOWED = {
    "common": set(),
    "pipeline": {"common"},
    "api": {"common", "pipeline"},
    "worker": {"common", "pipeline"},
    "allocator": {"common"},
    "operator": {"common", "pipeline"},
}
# Import name -> the distribution that provides it, where the two differ.
DISTRIBUTIONS = {
    "jwt": "pyjwt",
    "argon2": "argon2-cffi",
    "prometheus_client": "prometheus-client",
    "hiredis": "redis",
}


def imports(folder: Path) -> list[tuple[Path, ast.Import | ast.ImportFrom]]:
    found: list[tuple[Path, ast.Import | ast.ImportFrom]] = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append((path, node))
    return found


def top_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [] if node.level else [node.module or ""]
    return [alias.name for alias in node.names]


def declared(distribution: str) -> set[str]:
    project = tomllib.loads((ROOT / distribution / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0].split("[")[0]
        for stop in "<>=!~ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower())
    return names


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_each_package_declares_the_third_party_packages_it_imports(distribution: str) -> None:
    folder = ROOT / distribution / "crypto_mine" / PACKAGES[distribution]
    needed = {
        DISTRIBUTIONS.get(top, top).replace("_", "-")
        for _, node in imports(folder)
        for name in top_names(node)
        if (top := name.split(".")[0])
        and top not in sys.stdlib_module_names
        and top not in ("crypto_mine", "__future__")
    }
    assert needed - declared(distribution) == set(), f"{distribution} imports undeclared packages"


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_packages_import_themselves_relatively_and_only_what_lies_below(
    distribution: str,
) -> None:
    package = PACKAGES[distribution]
    folder = ROOT / distribution / "crypto_mine" / package
    wrong: list[str] = []
    for path, node in imports(folder):
        for name in top_names(node):
            parts = name.split(".")
            if parts[0] != "crypto_mine" or len(parts) < 2:
                continue
            if parts[1] == package:
                wrong.append(f"{path.name}: absolute import of its own package: {name}")
            elif parts[1] not in ALLOWED[package]:
                wrong.append(f"{path.name}: imports {name}")
    assert wrong == []


def test_the_distributions_that_import_the_pipeline_declare_it() -> None:
    for distribution, package in PACKAGES.items():
        uses = "pipeline" in ALLOWED[package] and any(
            name.startswith("crypto_mine.pipeline")
            for _, node in imports(ROOT / distribution / "crypto_mine" / package)
            for name in top_names(node)
        )
        assert uses == ("crypto-mine-pipeline" in declared(distribution)), distribution
