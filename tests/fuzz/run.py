"""Schemathesis against ``/openapi.json`` of a real api process on the real stack.

The api runs under uvicorn with real Redis, MongoDB and id-allocator; requests carry a valid
token of a user signed up through the api. Every check schemathesis has is on: no 5xx, every
status, header, content type and body as documented, schema-valid data accepted, invalid
data rejected, authentication not ignored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.stack import Stack

ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")
LIMITS = "1000000"


def fuzz_stack(folder: Path) -> Stack:
    """The stack with limits out of the way, so that schemathesis exercises the logic."""
    return Stack(
        folder,
        api_env={
            "MINING_RATE_LIMIT_GLOBAL": LIMITS,
            "MINING_RATE_LIMIT_GLOBAL_BURST": LIMITS,
            "MINING_RATE_LIMIT_PER_USER": LIMITS,
            "MINING_RATE_LIMIT_USER_BURST": LIMITS,
            "MINING_RATE_LIMIT_PER_IP": LIMITS,
            "MINING_RATE_LIMIT_IP_BURST": LIMITS,
            "LOGIN_MAX_ATTEMPTS": LIMITS,
            "LOGIN_IP_MAX_ATTEMPTS": LIMITS,
            "REGISTER_MAX_ATTEMPTS": LIMITS,
            "API_RATE_LIMIT": "0",
        },
        worker_pods=1,
        web_concurrency=2,
        redis_fsync="everysec",
    )


def sign_up(stack: Stack, username: str = "fuzzer") -> str:
    """A token of a user created through the api (its id from the id-allocator)."""
    answer = httpx.post(
        f"{stack.api.url}/api/auth/register",
        json={"username": username, "password": "a fuzzing password"},
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


@dataclass
class Outcome:
    returncode: int
    output: str


def run_schemathesis(
    stack: Stack, token: str, max_examples: int, seed: int, report: Path, workers: int = 1
) -> Outcome:
    argv = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{stack.api.url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--generation-database",
        "none",
        "--suppress-health-check",
        "too_slow",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    # Logout signs its token out of event streams: it gets a token of its own (the config's
    # LOGOUT_TOKEN), so that the event stream goes on being tested with the main one.
    env = {**os.environ, "LOGOUT_TOKEN": sign_up(stack, "fuzzer-logout")}
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=1800, check=False, cwd=report.parent, env=env
    )
    return Outcome(result.returncode, result.stdout + result.stderr)
