"""Every image's Dockerfile: what it copies, who it runs as, hadolint, its pinned packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass(frozen=True)
class Image:
    name: str
    folder: str
    ports: tuple[int, ...]

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.folder / "Dockerfile"

    @property
    def package(self) -> str:
        return f"crypto-mine-{self.name}"


IMAGES = [
    Image("api", "services/api", (8080,)),
    Image("worker", "services/worker", (9100,)),
    Image("id-allocator", "services/id-allocator", (8081,)),
    Image("operator", "operator", (8000, 8080)),
]
BY_NAME = pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def uv() -> list[str]:
    """uv as the Makefile runs it (``python3 -m uv``, pinned by `make setup`), else on PATH."""
    pinned = ["python3", "-m", "uv"]
    if subprocess.run([*pinned, "--version"], capture_output=True, check=False).returncode == 0:
        return pinned
    found = shutil.which("uv")
    assert found, "uv missing: `make setup`"
    return [found]


def export_command(image: Image) -> list[str]:
    return [
        *uv(), "export", "--package", image.package, "--no-dev", "--frozen",
        "--no-emit-workspace", "--no-header", "--quiet",
    ]  # fmt: skip


@BY_NAME
def test_dockerfile_copies_common_and_the_component_only(image: Image) -> None:
    steps = instructions(image.dockerfile)
    assert [args for op, args in steps if op == "FROM"][1:] == ["${PYTHON_IMAGE}"]
    assert len([op for op, _ in steps if op == "FROM"]) == 2, "multi-stage: build + runtime"
    assert "PYTHON_IMAGE=python:3.11-slim" in [args for op, args in steps if op == "ARG"]
    copied = [args.split()[0] for op, args in steps if op == "COPY" and "--from" not in args]
    assert copied == [f"{image.folder}/requirements.lock", "services/common", image.folder]
    installs = [args for op, args in steps if op == "RUN" and "-r /tmp/requirements.lock" in args]
    assert len(installs) == 1
    assert "--require-hashes" in installs[0]


@BY_NAME
def test_runtime_runs_as_non_root_without_healthcheck(image: Image) -> None:
    steps = instructions(image.dockerfile)
    assert "HEALTHCHECK" not in {op for op, _ in steps}, "probes live in the chart"
    assert [args for op, args in steps if op == "USER"] == ["10001:10001"]
    runtime = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    exposed = [int(port) for op, args in runtime if op == "EXPOSE" for port in args.split()]
    assert tuple(exposed) == image.ports


@BY_NAME
def test_command_is_the_component_entry_point(image: Image) -> None:
    project = tomllib.loads((ROOT / image.folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == image.package
    entry = f"crypto-mine-{image.name}"
    assert entry in project["scripts"]
    assert [args for op, args in instructions(image.dockerfile) if op == "CMD"] == [f'["{entry}"]']


@BY_NAME
def test_hadolint_finds_nothing(image: Image) -> None:
    assert HADOLINT.exists(), "hadolint missing: `uv sync --all-packages` (dev group)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(image.dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@BY_NAME
def test_requirements_lock_matches_uv_lock(image: Image) -> None:
    exported = subprocess.run(
        export_command(image), cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    lock = ROOT / image.folder / "requirements.lock"
    assert lock.read_text() == exported, f"{lock.relative_to(ROOT)} is out of date: run `make lock`"
    assert "--hash=sha256:" in exported
    members = re.findall(r"^crypto-mine\S*", exported, re.M)
    assert members == [], "workspace members are copied, not installed from PyPI"
