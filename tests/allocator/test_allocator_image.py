"""The allocator's Dockerfile: what it copies, who it runs as, and its pinned packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "services" / "id-allocator"
EXPORT = [
    "uv", "export", "--package", "crypto-mine-id-allocator", "--no-dev", "--frozen",
    "--no-emit-workspace", "--no-header",
]  # fmt: skip


def instructions() -> list[tuple[str, str]]:
    text = (SERVICE / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_builds_from_common_and_the_service_only() -> None:
    steps = instructions()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) == 2
    assert "python:3.11-slim" in dict(steps)["ARG"]
    copied = [args.split()[0] for op, args in steps if op == "COPY" and "--from" not in args]
    assert copied == [
        "services/id-allocator/requirements.lock",
        "services/common",
        "services/id-allocator",
    ]
    assert "HEALTHCHECK" not in {op for op, _ in steps}
    users = [args for op, args in steps if op == "USER"]
    assert users == ["10001:10001"]
    scripts = tomllib.loads((SERVICE / "pyproject.toml").read_text())["project"]["scripts"]
    assert [args for op, args in steps if op == "CMD"] == [f'["{next(iter(scripts))}"]']


def test_requirements_lock_matches_uv_lock() -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed")
    exported = subprocess.run(
        EXPORT, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert (SERVICE / "requirements.lock").read_text() == exported, (
        "services/id-allocator/requirements.lock is out of date: run "
        f"`{' '.join(EXPORT)} -o services/id-allocator/requirements.lock`"
    )
