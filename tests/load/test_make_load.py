"""``make load`` as the README shows it: k6 against ``make run``'s stack, tokens from a file.

The run inside the test suite checks answers only (``P95_MS=off``): its verdict must not depend
on how fast or busy the machine is. Latency goals belong to ``make load`` and ``make bench``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.local_run import ROOT, local_run

SCRIPT = ROOT / "tests" / "load" / "mining-clicks.js"
K6 = Path(sys.executable).parent / "k6"


def thresholds(*env: str) -> dict[str, list[str]]:
    """The thresholds k6 reads from the script with these ``-e NAME=value`` settings."""
    args = [arg for setting in env for arg in ("-e", setting)]
    done = subprocess.run(
        [str(K6), "inspect", *args, str(SCRIPT)], capture_output=True, text=True, check=True
    )
    found: dict[str, list[str]] = json.loads(done.stdout)["thresholds"]
    return found


def test_latency_goals_are_on_by_default_and_off_on_request() -> None:
    default = thresholds()
    assert default["http_req_duration{name:click}"] == ["p(95)<300"]
    assert thresholds("P95_MS=120")["http_req_duration{scenario:clicks}"] == ["p(95)<120"]
    answers_only = thresholds("P95_MS=off")
    assert answers_only == {
        "http_req_failed{scenario:clicks}": ["rate<0.01"],
        "checks": ["rate>0.99"],
    }
    assert {k: v for k, v in default.items() if "duration" not in k} == answers_only
    with pytest.raises(subprocess.CalledProcessError):
        thresholds("P95_MS=fast")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_load_answers_within_its_thresholds_with_a_relative_tokens_file(
    tmp_path: Path,
) -> None:
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
                    "P95_MS=off",
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
    assert "p(95)<" not in output, "latency is no threshold of this run"
    accepted = re.search(r"clicks_accepted\D+(\d+)", output)
    assert accepted, output
    assert int(accepted.group(1)) > 0, output
