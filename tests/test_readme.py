"""The README's quick start works as written against ``make run``'s stack."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_run import local_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


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
    with local_run(tmp_path, timeout=180) as run:
        script = quick_start_script().replace(
            "127.0.0.1:8080", f"127.0.0.1:{run.ports['API_PORT']}"
        )
        # People type slower than bash runs: before the status line, ask the same question
        # until the worker has applied the click (at most 120 s), as a person would look again.
        lines = script.splitlines()
        at = next(
            i
            for i, line in enumerate(lines)
            if line.startswith("curl") and "/api/mining/click/status" in line
        )
        completed = '\'"status":"completed"\''
        lines.insert(
            at,
            f"for _ in $(seq 1200); do {lines[at]} | grep {completed} >/dev/null && break; "
            "sleep 0.1; done",
        )
        script = "\n".join(lines)
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        ).stdout
        answers = json_values(out)
        queued, status, mining = answers
        assert queued["status"] == "queued"
        assert status["status"] == "completed"
        assert status["result"]["balance"] == 1
        assert mining["balance"] == 1
        assert mining["clicks"] == 1
    assert run.process.returncode == 0
    assert "stopped" in run.output
