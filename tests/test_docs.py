"""The README and ``.env.example`` document every setting the code reads, the commands the
README promises exist, and every relative link of the markdown files leads somewhere."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from crypto_mine.allocator.settings import AllocatorSettings
from crypto_mine.api.http.http_limits import HttpLimits
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.metrics import MULTIPROC_ENV
from crypto_mine.common.settings import Env
from crypto_mine.operator.settings import OperatorSettings
from crypto_mine.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
SETTING = re.compile(r"env\.(?:str|int|float|bool|choice|optional)\(\s*\"([A-Z][A-Z0-9_]+)\"")
ALIAS = re.compile(r"\balias=\"([A-Z][A-Z0-9_]+)\"")
# Read outside the settings objects: by the metrics client.
READ_ELSEWHERE = {MULTIPROC_ENV}


def settings_read_by_code() -> set[str]:
    names: set[str] = set(READ_ELSEWHERE)
    for folder in ("services", "operator"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            names.update(SETTING.findall(text))
            names.update(ALIAS.findall(text))
    return names


def example_lines() -> dict[str, str | None]:
    """Every variable of ``.env.example``: its value, or None when commented out."""
    found: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.splitlines():
        match = re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(\S*).*", line)
        if match:
            found[match[2]] = None if match[1] else match[3]
    return found


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


def test_every_setting_is_in_the_env_example() -> None:
    listed = example_lines()
    missing = sorted(settings_read_by_code() - set(listed))
    assert missing == [], f"settings missing from .env.example: {missing}"
    assert sorted(set(listed) - settings_read_by_code()) == []


class Recording(dict[str, str]):
    """An environment that notes every variable looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_every_variable_the_api_reads_is_documented() -> None:
    """The names the api's settings look up while they are built, not found by a scan of the
    source: each is also found by the scan, and is in the README's table and .env.example."""
    environ = Recording({"JWT_SECRET": "s" * 32})
    ApiSettings.from_env(Env(environ))
    HttpLimits.from_env(Env(environ))
    assert len(environ.read) > 60
    assert sorted(environ.read - settings_read_by_code()) == []
    assert sorted(name for name in environ.read if not documented(name)) == []
    assert sorted(environ.read - set(example_lines())) == []


def configuration_table_names() -> set[str]:
    """The variables the first cells of the README's Configuration tables name; a `_SUFFIX`
    stands for the first name of its cell with its last part(s) replaced."""
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    read = settings_read_by_code()
    names: set[str] = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.M):
        cell = re.findall(r"`([A-Z_][A-Z0-9_]*)`", row)
        full = [name for name in cell if not name.startswith("_")]
        names.update(full)
        for suffix in (name for name in cell if name.startswith("_")):
            parts = full[0].split("_")
            found = [
                "_".join(parts[:cut]) + suffix
                for cut in range(1, len(parts))
                if "_".join(parts[:cut]) + suffix in read
            ]
            names.add(found[0] if found else full[0] + suffix)
    return names


def test_every_variable_of_the_configuration_table_is_read() -> None:
    """One scheme: the table names no variable the code does not read (the original
    documents' names are there only as the other names the code accepts)."""
    names = configuration_table_names()
    assert len(names) > 80
    assert sorted(names - settings_read_by_code()) == []


def fields(settings: Any) -> dict[str, Any]:
    return {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}


def test_the_env_example_holds_the_defaults() -> None:
    """Loading its lines as they are builds the very settings an empty environment builds."""
    example = {name: value for name, value in example_lines().items() if value is not None}
    secret = {"JWT_SECRET": "s" * 32}
    assert ApiSettings.from_env(Env({**example, **secret})) == ApiSettings.from_env(Env(secret))
    assert WorkerSettings.from_env(Env(example)) == WorkerSettings.from_env(Env({}))
    token = {"ID_ALLOCATOR_TOKEN": "t" * 32}
    allocator = AllocatorSettings.from_env(Env({**example, **token, "PORT": "8081"}))
    assert allocator == AllocatorSettings.from_env(Env(token))
    # Outside a pod the Lease's namespace must be given (in one, the pod's is the default).
    lease = {"LEASE_NAMESPACE": "games", "POD_NAME": "operator-0"}
    operator = fields(OperatorSettings.from_env(Env({**example, **lease})))
    # REDIS_URL is shared; the operator reads it only for `metric.source: redis`.
    assert operator.pop("redis_url") == example["REDIS_URL"]
    default = fields(OperatorSettings.from_env(Env(lease)))
    assert default.pop("redis_url") is None
    # ... and so may a QueueAutoscaler name it.
    assert operator.pop("metric_urls").admits(example["REDIS_URL"])
    assert not default.pop("metric_urls").admits(example["REDIS_URL"])
    # Each start is a candidate of its own (a suffix after the pod's name).
    ours, theirs = operator.pop("election"), default.pop("election")
    assert replace(ours, identity="") == replace(theirs, identity="")
    assert operator == default


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


def data_path_table() -> str:
    section = README.split("The data path of one click", 1)[1]
    return section.split("\n\n", 2)[1]


def test_the_data_path_table_names_files_and_classes_that_exist() -> None:
    table = data_path_table()
    paths = re.findall(r"`((?:services|operator)/[^`]+)`", table)
    assert len(paths) >= 20, "the table lost its paths"
    assert [path for path in paths if not (ROOT / path).is_file()] == []
    # A class or function named beside a file, e.g. ``ledger.py` (`Ledger.apply`)``, is in it.
    named = re.findall(r"`((?:services|operator)/[^`]+\.py)` \(`([A-Za-z_]+)", table)
    assert len(named) >= 8
    missing = [
        (path, name)
        for path, name in named
        if not re.search(rf"^(class|def|async def) {name}\b", (ROOT / path).read_text(), re.M)
    ]
    assert missing == []


# [text](target) and [text]: target, outside fenced code blocks and inline code.
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.I)


def markdown_files() -> list[Path]:
    """Every markdown file of the repository, hidden folders (.venv, .local, ...) left out."""
    found: list[Path] = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "node_modules")))
        found += [Path(folder) / name for name in sorted(names) if name.endswith(".md")]
    return found


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        anchor, number = slug, 0
        while anchor in found:
            number += 1
            anchor = f"{slug}-{number}"
        found.add(anchor)
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """The relative links of a markdown file whose file, or heading, is not in ``root``."""
    text = prose(path.read_text())
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text) + HTML_LINK.findall(text)
    broken: list[str] = []
    for target in targets:
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            continue  # https:, mailto:, ...: not a file of the repository
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        there = linked.exists() and linked.is_relative_to(root)
        if not there or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    return broken


def test_every_relative_link_resolves() -> None:
    files = markdown_files()
    assert ROOT / "README.md" in files
    assert ROOT / "docs" / "runbooks" / "README.md" in files
    broken = {str(path.relative_to(ROOT)): links for path in files if (links := broken_links(path))}
    assert broken == {}


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    """What the link check catches: a missing file, a missing heading, a file outside the
    repository; not links in code, nor web addresses."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# Read me\n\n## Quick start\n")
    (tmp_path / "outside.md").write_text("# Outside\n")
    page = root / "docs" / "page.md"
    page.write_text(
        "# Title\n\n## A section\n\n"
        "[ok](../README.md) [ok](#a-section) [ok](../README.md#quick-start)\n"
        "[web](https://example.com/missing.md) `[code](missing-in-code.md)`\n"
        "```\n[fenced](missing-in-fence.md)\n```\n"
        "[gone](missing.md) [no heading](../README.md#nowhere) [outside](../../outside.md)\n"
        "[ref]: missing-reference.md\n"
        '<img src="missing.png">\n'
    )
    assert broken_links(page, root) == [
        "missing.md",
        "../README.md#nowhere",
        "../../outside.md",
        "missing-reference.md",
        "missing.png",
    ]
