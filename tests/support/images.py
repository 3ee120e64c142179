"""The project's container images: their names, and podman as the scripts configure it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGES_SH = ROOT / "scripts" / "images.sh"


@dataclass(frozen=True)
class Image:
    name: str
    folder: str
    ports: tuple[int, ...]

    @property
    def package(self) -> str:
        return f"crypto-mine-{self.name}"

    @property
    def entry_point(self) -> str:
        return f"crypto-mine-{self.name}"


IMAGES = [
    Image("api", "services/api", (8080,)),
    Image("worker", "services/worker", (9100,)),
    Image("id-allocator", "services/id-allocator", (8081,)),
    Image("operator", "operator", (8000, 8080)),
]


def tag() -> str:
    chart = (ROOT / "charts" / "crypto-mine" / "Chart.yaml").read_text()
    found = re.search(r'^appVersion: *"?([^"\n]+)"?', chart, re.M)
    assert found, "Chart.yaml has no appVersion"
    return found.group(1)


def reference(name: str) -> str:
    """The local name `make images` gives an image (products and dev stand-ins alike)."""
    return f"localhost/crypto-mine-{name}:{tag()}"


def podman_env() -> dict[str, str]:
    """The environment podman runs with in the project (its own containers.conf)."""
    printed = subprocess.run(
        [str(IMAGES_SH), "env"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    name, _, value = printed.strip().removeprefix("export ").partition("=")
    return {**os.environ, name: value}


def podman(
    *argv: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=podman_env(),
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(argv)} exited {result.returncode}: {result.stderr}")
    return result


def build_images(*names: str) -> list[str]:
    """`make images` (cached layers): the references built."""
    result = subprocess.run(
        [str(IMAGES_SH), "build", *names],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/images.sh build failed:\n{result.stderr[-4000:]}")
    return result.stdout.split()


def inspect(ref: str) -> dict[str, Any]:
    loaded: list[dict[str, Any]] = json.loads(podman("image", "inspect", ref).stdout)
    return loaded[0]
