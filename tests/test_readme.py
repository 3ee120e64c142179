"""The README's quick start works as written against ``make run``'s stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def quick_start_script() -> str:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the quick start has the set-up block and the example block"
    return str(blocks[1])


def json_values(text: str) -> list[dict[str, Any]]:
    """The JSON documents curl printed one after another (without newlines)."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        value, index = decoder.raw_decode(text, index)
        values.append(value)
    return values


def test_quick_start_example(tmp_path: Path) -> None:
    ports = {name: free_port() for name in (
        "API_PORT", "ID_ALLOCATOR_PORT", "WORKER_METRICS_PORT", "REDIS_PORT", "MONGO_PORT",
    )}  # fmt: skip
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DEVSTACK_STATE": str(tmp_path)}
    stack = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = stack.stdout
    assert output is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(output), daemon=True)
    try:
        reader.start()
        deadline = time.monotonic() + 60
        while not any("Try it" in line for line in lines) and time.monotonic() < deadline:
            assert stack.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any("crypto-mine is running" in line for line in lines), "".join(lines)
        script = quick_start_script().replace("127.0.0.1:8080", f"127.0.0.1:{ports['API_PORT']}")
        # People type slower than bash runs: give the worker a moment before asking for status.
        script = script.replace('curl -s "http', 'sleep 1; curl -s "http', 1)
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        answers = json_values(out)
        queued, status, mining = answers
        assert queued["status"] == "queued"
        assert status["status"] == "completed"
        assert status["result"]["balance"] == 1
        assert mining["balance"] == 1
        assert mining["clicks"] == 1
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(60)
        reader.join(10)
        output.close()
    assert stack.returncode == 0
    assert "stopped" in "".join(lines)
