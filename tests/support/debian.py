"""Debian tools the tests run, installed by scripts/ensure-apt.sh when missing."""

from __future__ import annotations

import shutil
import subprocess

from devstack.generate import ROOT


def installed(command: str, package: str | None = None) -> str:
    """The path of ``command``, after installing its Debian ``package`` (by default the package
    of the same name) if it is missing."""
    package = package or command
    found = shutil.which(command)
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), package], check=True)
        found = shutil.which(command)
    assert found, f"{command} missing: scripts/ensure-apt.sh {package}"
    return found
