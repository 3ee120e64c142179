"""The mutation lists stay true to the code: a Lua mutant whose text left its script, a covering
test file that moved, or an explained survivor whose line changed would make ``make mutation``
stop or mislead, hours later. These checks run with the suite."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .lua_mutants import load
from .targets import ROOT, TARGETS

EQUIVALENT = Path(__file__).with_name("equivalent.toml")


def test_every_lua_mutant_changes_text_that_is_once_in_its_script() -> None:
    mutants = load()  # stops, naming the mutant, when one is not
    assert len(mutants) >= 60
    for mutant in mutants:
        assert mutant.find != mutant.replace, mutant.name
        for test in mutant.script.tests:
            assert (ROOT / test).is_file(), (mutant.name, test)


def test_every_target_and_its_tests_exist() -> None:
    for target in TARGETS:
        assert (ROOT / target.package_dir / target.file).is_file(), target.name
        for test in target.tests:
            assert (ROOT / test).is_file(), (target.name, test)


def test_every_explained_survivor_names_a_line_of_its_module() -> None:
    listed = tomllib.loads(EQUIVALENT.read_text())["equivalent"]
    files = {t.module: ROOT / t.package_dir / t.file for t in TARGETS}
    for entry in listed:
        source = stripped(files[entry["module"]].read_text())
        assert stripped(entry["was"]) in source, entry
        assert entry["why"].strip(), entry


def stripped(text: str) -> str:
    """Lines without their indentation, as the survivors are matched."""
    return "\n".join(line.strip() for line in text.strip().splitlines())
