"""mutmut on one module at a time, in a staging folder laid out as mutmut expects.

mutmut names a mutant after its file's path below ``src/``, and imports the mutated copy from
``mutants/src``: so each target's package is copied to ``src/crypto_mine/<package>`` (the other
packages come from the environment, unmutated), with the tests, ``devstack`` and a
``pyproject.toml`` holding the suite's pytest settings and the target's mutmut settings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cleanup import stop_leftovers, tmpdir
from .targets import ROOT, Target

# mutmut's verdicts that mean a test noticed the mutant.
KILLED = frozenset({"killed", "timeout", "caught by type check", "segfault"})

# Run inside the staging folder by the mutation environment's Python: every mutant of the
# target with its verdict and its diff, as JSON.
COLLECT = """
import json, sys
from mutmut.__main__ import (
    SourceFileMutationData, get_diff_for_mutant, status_by_exit_code, walk_mutatable_files,
)
found = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        found.append({
            "name": name,
            "status": status_by_exit_code[code],
            "diff": get_diff_for_mutant(name, path=data.path),
        })
json.dump(found, sys.stdout)
"""


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's name, e.g. crypto_mine.operator.decision.x_decide__mutmut_3
    status: str
    function: str  # e.g. "decide" or "Policy.__post_init__"
    was: str  # the lines the mutation removed
    now: str  # the lines it added

    @property
    def killed(self) -> bool:
        return self.status in KILLED

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Mutant:
        name: str = raw["name"]
        mangled = name.rpartition("__mutmut_")[0].rpartition(".")[2]
        if mangled.startswith("x\u01c1"):  # a method: x<sep>Class<sep>method
            _, owner, method = mangled.split("\u01c1")
            function = f"{owner}.{method}"
        else:
            function = mangled.removeprefix("x_")
        lines = str(raw["diff"]).splitlines()
        was = [
            line[1:].strip()
            for line in lines
            if line.startswith("-") and not line.startswith("---")
        ]
        now = [
            line[1:].strip()
            for line in lines
            if line.startswith("+") and not line.startswith("+++")
        ]
        return cls(name, str(raw["status"]), function, "\n".join(was), "\n".join(now))


def pytest_settings() -> dict[str, Any]:
    settings: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "pytest"
    ]["ini_options"]
    return settings


def toml_value(value: object) -> str:
    return json.dumps(value)  # JSON strings, lists and numbers are TOML too


def stage(target: Target, folder: Path) -> None:
    """A fresh staging folder for ``target``."""
    if folder.exists():
        shutil.rmtree(folder)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = f"crypto_mine/{target.package}"
    shutil.copytree(ROOT / target.package_dir / package, folder / "src" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    shutil.copytree(ROOT / "devstack", folder / "devstack", ignore=ignore)
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in pytest_settings().items()]
    mutmut = {
        "source_paths": [f"src/{package}"],
        "only_mutate": [f"src/{target.file}"],
        "also_copy": ["devstack"],
        # The schemathesis plugin only slows every start; no covering test uses it.
        "pytest_add_cli_args": ["-p", "no:schemathesis", "-p", "no:cacheprovider"],
        "pytest_add_cli_args_test_selection": list(target.tests),
        "use_setproctitle": False,
        # Tests start servers: a mutant is "timeout" only well past the clean run's time.
        "timeout_multiplier": 10.0,
        "timeout_constant": 30.0,
    }
    lines += ["", "[tool.mutmut]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in mutmut.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")


def run(target: Target, folder: Path, children: int) -> tuple[list[Mutant], float]:
    """Every mutant of ``target`` with its verdict, and the seconds it took."""
    missing = [test for test in target.tests if not (ROOT / test).exists()]
    if missing:
        raise SystemExit(f"{target.name}: covering tests not found: {missing}")
    stage(target, folder)
    started = time.monotonic()
    mutmut = Path(sys.executable).parent / "mutmut"
    try:
        with (folder / "mutmut.log").open("w") as log:
            done = subprocess.run(
                [str(mutmut), "run", "--max-children", str(children)],
                cwd=folder,
                env=tmpdir(folder),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
    finally:
        stop_leftovers(folder)
    took = time.monotonic() - started
    if done.returncode != 0:
        tail = (folder / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{target.name}: mutmut failed ({done.returncode}):\n{tail}")
    collected = subprocess.run(
        [sys.executable, "-c", COLLECT], cwd=folder, capture_output=True, text=True, check=True
    )
    return [Mutant.parse(raw) for raw in json.loads(collected.stdout)], took
