"""The commands of the runbooks in docs/runbooks/, and running them as an on-call engineer
pastes them: in bash, with ``NAMESPACE`` and ``RELEASE`` set, from the repository's root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.generate import COMMON_SECTION, ROOT, RUNBOOKS, helm, helm_env
from tests.support.cluster import KUBECTL

FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
SHIM = Path(__file__).with_name("shim.py")
BIN = Path(sys.executable).parent


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def own_part(path: Path) -> str:
    """A runbook without the common section (copied from README.md, run once from there)."""
    return path.read_text().split(COMMON_SECTION, 1)[0]


def commands(script: str) -> list[str]:
    """Lines of a bash block with their continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", "", script)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def invocations(script: str) -> int:
    """How many kubectl or helm calls the commands of ``script`` make at least (those that
    ``xargs -r`` runs for each object found may not run)."""
    return sum(len(re.findall(r"(?:^|\$\()(?:kubectl|helm) ", line)) for line in commands(script))


def runbook_pages() -> list[Path]:
    return sorted(RUNBOOKS.glob("mining-*.md"))


@dataclass(frozen=True)
class Target:
    """A release of the chart the commands run against."""

    kubeconfig: Path
    namespace: str
    release: str
    redis_url: str  # the Redis an exec'd command uses when no pod can run it


@dataclass
class Outcome:
    calls: list[dict[str, Any]]
    missing: list[str]
    output: str

    def failed(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["code"] != 0 or call["kind"] == "unknown"]


def run_commands(script: str, target: Target, folder: Path) -> Outcome:
    """Run ``script`` in bash with kubectl and helm going through the shim; every call logged."""
    folder.mkdir(parents=True, exist_ok=True)
    shims = folder / "bin"
    shims.mkdir(exist_ok=True)
    for tool in ("kubectl", "helm"):
        wrapper = shims / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    log, missing = folder / "calls.jsonl", folder / "missing.txt"
    for path in (log, missing):
        path.write_text("")
    preamble = f'command_not_found_handle() {{ echo "$1" >> "{missing}"; return 127; }}\nset -u\n'
    env = {
        **helm_env(),
        "PATH": f"{shims}:{BIN}:{os.environ['PATH']}",
        "KUBECONFIG": str(target.kubeconfig),
        "NAMESPACE": target.namespace,
        "RELEASE": target.release,
        "SHIM_LOG": str(log),
        "SHIM_REAL_KUBECTL": str(KUBECTL),
        "SHIM_REAL_HELM": helm(),
        "SHIM_REDIS_URL": target.redis_url,
    }
    syntax = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert syntax.returncode == 0, syntax.stderr
    result = subprocess.run(
        ["bash"],
        input=preamble + script,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return Outcome(calls, missing.read_text().split(), result.stdout + result.stderr)
