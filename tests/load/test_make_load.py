"""``make load`` as the README shows it: k6 against ``make run``'s stack, with a tokens file or
with tokens it mints itself, and Redis sampled while it runs.

The runs inside the test suite check answers only (``P95_MS=off``): their verdict must not
depend on how fast or busy the machine is. Latency goals belong to ``make load`` and
``make bench``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_run import ROOT, LocalRun, local_run

SCRIPT = ROOT / "tests" / "load" / "mining-clicks.js"
K6 = Path(sys.executable).parent / "k6"


def thresholds(*env: str) -> dict[str, list[str]]:
    """The thresholds k6 reads from the script with these ``-e NAME=value`` settings, but for
    those that never fail (they only make the summary list answers by endpoint and status)."""
    args = [arg for setting in env for arg in ("-e", setting)]
    done = subprocess.run(
        [str(K6), "inspect", *args, str(SCRIPT)], capture_output=True, text=True, check=True
    )
    found: dict[str, list[str]] = json.loads(done.stdout)["thresholds"]
    return {k: v for k, v in found.items() if v not in (["count>=0"], ["max>=0"])}


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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRun, dict[str, str]]]:
    state = tmp_path_factory.mktemp("stack")
    with local_run(state) as run:
        env = {
            **os.environ,
            "DEVSTACK_STATE": str(state),
            "REDIS_PORT": str(run.ports["REDIS_PORT"]),
        }
        yield run, env


def make_load(env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        ["make", "-s", "load", *arguments, "P95_MS=off"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # k6 exits non-zero when a threshold fails
    assert "http_req_failed{scenario:clicks}" in output
    assert not re.search(r"✗ '", output), output  # no threshold crossed
    assert "p(95)<" not in output, "latency is no threshold of this run"
    return output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_load_answers_within_its_thresholds_with_a_relative_tokens_file(
    stack: tuple[LocalRun, dict[str, str]],
) -> None:
    run, env = stack
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
        output = make_load(
            env, f"BASE_URL={run.url}", f"AUTH_TOKENS_FILE={relative}", "RPS=20", "DURATION=4s"
        )
    finally:
        (ROOT / relative).unlink()
    accepted = re.search(r"clicks_accepted\D+(\d+)", output)
    assert accepted, output
    assert int(accepted.group(1)) > 0, output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_load_mints_the_users_tokens_and_samples_redis(
    stack: tuple[LocalRun, dict[str, str]],
) -> None:
    """No token given, the local stack's secret at hand: USERS tokens, no sign-up."""
    run, env = stack
    output = make_load(env, f"BASE_URL={run.url}", "USERS=60", "RPS=15", "DURATION=4s")
    assert "60 tokens minted with the local stack's secret" in output, output
    folder = re.search(r"results in (\S+)", output)
    assert folder, output
    result = json.loads((Path(folder.group(1)) / "load.json").read_text())
    clicks = result["endpoints"]["click"]
    assert clicks["requests"] > 0
    assert clicks["by status"]["202"]["count"] > 0, clicks
    assert clicks["other statuses"] == 0, clicks
    samples = result["redis"]["samples"]
    assert len(samples) >= 3, result["redis"]
    assert all(sample["used_memory"] > 0 for sample in samples)
    assert "redis used_memory (MiB)" in output
    minted = (Path(folder.group(1)) / "tokens.txt").read_text().split()
    assert len(set(minted)) == 60
