"""The README documents every setting the code reads, and the commands it promises exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTING = re.compile(r"env\.(?:str|int|float|bool|choice|optional)\(\s*\"([A-Z][A-Z0-9_]+)\"")


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for folder in ("services", "operator"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(SETTING.findall(path.read_text()))
    return names


def documented(name: str) -> bool:
    """Named in a table cell, also as a `_SUFFIX` after its family's prefix."""
    if f"`{name}`" in README:
        return True
    return any(
        name.startswith(prefix) and f"`_{name[len(prefix) :]}`" in README
        for prefix in re.findall(r"`([A-Z][A-Z0-9_]+_)[A-Z0-9]+`", README)
    )


def test_every_setting_is_in_the_configuration_table() -> None:
    names = settings_read_by_code()
    assert len(names) > 40
    missing = sorted(name for name in names if not documented(name))
    assert missing == [], f"settings missing from README.md: {missing}"


def test_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"make (?:-s )?([a-z][a-z0-9-]*)", README):
        assert re.search(rf"^{target}:", makefile, re.M), f"README uses missing target {target}"
    assert (ROOT / ".ci" / "run").read_text().count("make test") == 1


def test_every_alert_is_in_the_readme_with_its_runbook() -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "rules.yaml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"] if "alert" in r]
    assert len(alerts) >= 10
    for rule in alerts:
        runbook = rule["annotations"]["runbook_url"].rsplit("/", 1)[1]
        assert (ROOT / "docs" / "runbooks" / runbook).is_file(), runbook
        assert f"`{rule['alert']}`" in README
        assert f"docs/runbooks/{runbook}" in README
