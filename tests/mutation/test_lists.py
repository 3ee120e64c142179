"""The mutation lists stay true to the code: a Lua mutant whose text left its script, a covering
test file that moved, or an explained survivor whose line changed would make ``make mutation``
stop or mislead, hours later. These checks run with the suite."""

from __future__ import annotations

import ast
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
        text = files[entry["module"]].read_text()
        assert entry["function"] in functions(text), entry  # mutmut's name for it
        assert stripped(entry["was"]) in stripped(text), entry
        assert entry["why"].strip(), entry


def functions(source: str) -> set[str]:
    """The module's functions and methods, named as mutmut names them (``Class.method``)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return names


def stripped(text: str) -> str:
    """Lines without their indentation, as the survivors are matched."""
    return "\n".join(line.strip() for line in text.strip().splitlines())
