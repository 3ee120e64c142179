"""``make load`` as the README shows it: k6 against ``make run``'s stack, tokens from a file."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.support.local_run import ROOT, local_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_make_load_passes_its_thresholds_with_a_relative_tokens_file(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    with local_run(state) as run:
        env = {**os.environ, "DEVSTACK_STATE": str(state)}
        tokens = [
            subprocess.run(
                ["make", "-s", "token", f"USER=load{n}"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            for n in range(3)
        ]
        relative = Path(".local") / "test-load" / f"tokens-{secrets.token_hex(4)}.txt"
        (ROOT / relative).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / relative).write_text("\n".join(tokens) + "\n")
        try:
            done = subprocess.run(
                [
                    "make",
                    "-s",
                    "load",
                    f"BASE_URL={run.url}",
                    f"AUTH_TOKENS_FILE={relative}",
                    "RPS=20",
                    "DURATION=4s",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            (ROOT / relative).unlink()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # k6 exits non-zero when a threshold fails
    assert "http_req_failed{scenario:clicks}" in output
    assert not re.search(r"✗ '", output), output  # no threshold crossed
    accepted = re.search(r"clicks_accepted\D+(\d+)", output)
    assert accepted, output
    assert int(accepted.group(1)) > 0, output
