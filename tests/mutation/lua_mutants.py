"""One-line mutations of the Lua scripts, listed in ``lua-mutants.toml``, run one at a time.

Each mutation replaces text that occurs exactly once in its script (an operator, a constant, a
whole line dropped), in a staged copy of the script's package that the tests import first
(``PYTHONPATH``); the tests named for that script then run with ``-x``. A mutant is killed when
they fail. Each worker has a staging folder of its own, so ``children`` mutants run at once.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .cleanup import stop_leftovers, tmpdir
from .targets import ROOT

LIST = Path(__file__).with_name("lua-mutants.toml")
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:schemathesis", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Script:
    path: str  # below the repository root
    tests: tuple[str, ...]

    @property
    def package_dir(self) -> Path:
        """The ``crypto_mine/<package>`` folder holding the script."""
        parts = Path(self.path).parts
        return Path(*parts[: parts.index("crypto_mine") + 2])


@dataclass(frozen=True)
class LuaMutant:
    script: Script
    find: str
    replace: str
    what: str
    equivalent: str  # why no behaviour tells it apart ("" unless explained)

    @property
    def name(self) -> str:
        return f"{Path(self.script.path).name}: {self.what}"


@dataclass(frozen=True)
class LuaResult:
    mutant: LuaMutant
    killed: bool
    seconds: float
    output: str


def load() -> list[LuaMutant]:
    listed = tomllib.loads(LIST.read_text())
    scripts = {
        name: Script(entry["path"], tuple(entry["tests"]))
        for name, entry in listed["scripts"].items()
    }
    mutants = [
        LuaMutant(
            scripts[entry["script"]],
            entry["find"],
            entry.get("replace", ""),
            entry["what"],
            entry.get("equivalent", ""),
        )
        for entry in listed["mutants"]
    ]
    for mutant in mutants:
        text = (ROOT / mutant.script.path).read_text()
        if text.count(mutant.find) != 1:
            raise SystemExit(
                f"lua-mutants.toml: {mutant.name}: {mutant.find!r} occurs "
                f"{text.count(mutant.find)} times in {mutant.script.path}, not once"
            )
    return mutants


class Stage:
    """A copy of the packages holding the scripts, imported before the installed ones."""

    def __init__(self, folder: Path, scripts: set[Script]) -> None:
        self.folder = folder
        if folder.exists():
            shutil.rmtree(folder)
        for package in {script.package_dir for script in scripts}:
            shutil.copytree(
                ROOT / package,
                folder / "src" / Path(*package.parts[-2:]),
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        self.env = {**tmpdir(folder), "PYTHONPATH": str(folder / "src")}

    def path(self, script: Script) -> Path:
        """The staged copy of the script (it must exist: a mutation written elsewhere would
        change nothing and every mutant would survive)."""
        staged = self.folder / "src" / Path(script.path).relative_to(script.package_dir.parents[1])
        if not staged.is_file():
            raise SystemExit(f"{script.path}: no staged copy at {staged}")
        return staged

    def check_imported(self, module: str) -> None:
        found = subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not found.startswith(str(self.folder)):
            raise SystemExit(f"the staged {module} is not the one imported: {found}")

    def pytest(self, tests: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [sys.executable, *PYTEST, *tests],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            stop_leftovers(self.folder)  # the servers of a run killed at its timeout

    def run(self, mutant: LuaMutant, timeout: float) -> LuaResult:
        path = self.path(mutant.script)
        pristine = (ROOT / mutant.script.path).read_text()
        path.write_text(pristine.replace(mutant.find, mutant.replace, 1))
        started = time.monotonic()
        try:
            done = self.pytest(mutant.script.tests, timeout)
            killed, output = done.returncode not in (0, 5), done.stdout[-2000:]
            if done.returncode == 5:
                raise SystemExit(f"{mutant.name}: no tests ran: {mutant.script.tests}")
        except subprocess.TimeoutExpired:
            killed, output = True, f"timed out after {timeout:.0f}s"
        finally:
            path.write_text(pristine)
        return LuaResult(mutant, killed, time.monotonic() - started, output)


def baseline(stage: Stage, scripts: set[Script]) -> dict[Script, float]:
    """Each script's tests, unmutated, must pass: the seconds they took."""
    took = {}
    for script in sorted(scripts, key=lambda s: s.path):
        started = time.monotonic()
        done = stage.pytest(script.tests, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"{script.path}: its tests fail unmutated:\n{done.stdout[-3000:]}")
        took[script] = time.monotonic() - started
    return took


def run(folder: Path, children: int, mutants: list[LuaMutant]) -> list[LuaResult]:
    scripts = {mutant.script for mutant in mutants}
    stages = [Stage(folder / f"stage{i}", scripts) for i in range(max(1, children))]
    for package in {script.package_dir for script in scripts}:
        stages[0].check_imported(".".join(package.parts[-2:]))
    took = baseline(stages[0], scripts)
    free: list[Stage] = list(stages)

    def one(mutant: LuaMutant) -> LuaResult:
        stage = free.pop()
        try:
            return stage.run(mutant, timeout=60 + 5 * took[mutant.script])
        finally:
            free.append(stage)

    with concurrent.futures.ThreadPoolExecutor(len(stages)) as pool:
        return list(pool.map(one, mutants))
