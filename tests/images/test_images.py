"""The Dockerfiles as written: targets, what they copy, who runs them, hadolint, pinned packages.

The images as built and run are in tests/images/test_containers.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.images import IMAGES, ROOT, Image

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILE = ROOT / "Dockerfile"
DEV_DOCKERFILE = ROOT / "devstack" / "images" / "Dockerfile"
BY_NAME = pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage, FROM line included."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for op, args in instructions(dockerfile):
        if op == "FROM":
            current = [(op, args)]
            words = args.split()
            found[words[-1] if len(words) == 3 and words[1].upper() == "AS" else args] = current
        elif current:
            current.append((op, args))
    return found


def uv() -> list[str]:
    """uv as the Makefile runs it (``python3 -m uv``, pinned by `make setup`), else on PATH."""
    pinned = ["python3", "-m", "uv"]
    if subprocess.run([*pinned, "--version"], capture_output=True, check=False).returncode == 0:
        return pinned
    found = shutil.which("uv")
    assert found, "uv missing: `make setup`"
    return [found]


def test_one_target_per_service_on_one_runtime() -> None:
    found = stages(DOCKERFILE)
    assert set(found) == {"build", "runtime"} | {image.name for image in IMAGES}
    for image in IMAGES:
        assert found[image.name][0] == ("FROM", f"runtime AS {image.name}")
        # A target adds metadata only: no layer of its own.
        assert {op for op, _ in found[image.name]} <= {"FROM", "LABEL", "ENV", "EXPOSE", "CMD"}
    assert found["build"][0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert found["runtime"][0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions(DOCKERFILE)


def test_build_copies_the_locks_common_the_pipeline_and_the_service_only() -> None:
    build = stages(DOCKERFILE)["build"]
    copied = [args.split()[0] for op, args in build if op == "COPY"]
    assert copied == [
        "build-requirements.lock",
        "${SERVICE_DIR}/requirements.lock",
        "services/common",
        "services/pipeline",
        "${SERVICE_DIR}",
    ]
    # The pipeline is installed only where the service declares it (not the id-allocator).
    assert "grep -q '\"crypto-mine-pipeline\"' /src/service/pyproject.toml" in build[-1][1]
    installs = [args for op, args in build if op == "RUN" and "requirements.lock" in args]
    assert len(installs) == 1
    assert installs[0].count("--require-hashes") == 2, "the build backend is pinned too"
    assert "--no-build-isolation" in build[-1][1], "no unpinned build backend from the index"
    assert "pip uninstall" in build[-1][1], "no pip in the runtime"


def test_runtime_runs_as_non_root_without_healthcheck() -> None:
    runtime = stages(DOCKERFILE)["runtime"]
    ops = [op for op, _ in runtime]
    assert "HEALTHCHECK" not in {op for op, _ in instructions(DOCKERFILE)}, "probes: the chart"
    assert [args for op, args in runtime if op == "USER"] == ["10001:10001"]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    # The revision's label comes last: a new commit changes metadata, never a layer.
    assert ops.index("LABEL") > max(i for i, op in enumerate(ops) if op in {"RUN", "COPY"})
    labels = " ".join(args for op, args in runtime if op == "LABEL")
    for key in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


@BY_NAME
def test_target_command_and_ports(image: Image) -> None:
    target = stages(DOCKERFILE)[image.name]
    project = tomllib.loads((ROOT / image.folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == image.package
    assert image.entry_point in project["scripts"]
    assert [args for op, args in target if op == "CMD"] == [f'["{image.entry_point}"]']
    exposed = [int(port) for op, args in target if op == "EXPOSE" for port in args.split()]
    assert tuple(exposed) == image.ports


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DEV_DOCKERFILE], ids=["products", "dev"])
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    assert HADOLINT.exists(), "hadolint missing: `uv sync --all-packages` (dev group)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_is_only_what_the_images_copy() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "everything is left out unless named"
    kept = {rule[1:] for rule in rules if rule.startswith("!")}
    assert kept == {
        "build-requirements.lock",
        "services/common",
        "services/pipeline",
        "devstack/images",
        *(image.folder for image in IMAGES),
    }


@BY_NAME
def test_requirements_lock_matches_uv_lock(image: Image) -> None:
    command = [
        *uv(), "export", "--package", image.package, "--no-dev", "--frozen",
        "--no-emit-workspace", "--no-header", "--quiet",
    ]  # fmt: skip
    exported = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    lock = ROOT / image.folder / "requirements.lock"
    assert lock.read_text() == exported, f"{lock.relative_to(ROOT)} is out of date: run `make lock`"
    assert "--hash=sha256:" in exported
    members = re.findall(r"^crypto-mine\S*", exported, re.M)
    assert members == [], "workspace members are copied, not installed from PyPI"


def test_build_backend_is_the_one_every_package_names() -> None:
    backends = {
        tuple(tomllib.loads(path.read_text())["build-system"]["requires"])
        for path in [ROOT / "services/common/pyproject.toml"]
        + [ROOT / image.folder / "pyproject.toml" for image in IMAGES]
    }
    assert backends == {("hatchling",)}
    lock = (ROOT / "build-requirements.lock").read_text()
    assert re.search(r"^hatchling==\S+ \\$", lock, re.M)
    pinned = re.findall(r"^\S+==\S+", lock, re.M)
    assert pinned
    assert lock.count("--hash=sha256:") >= len(pinned)
