"""Schemathesis finds no 5xx, no undocumented answer and no schema violation in the api."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run import fuzz_stack, run_schemathesis, sign_up

pytestmark = pytest.mark.slow

EXAMPLES = 25  # per operation; `make fuzz` runs 300


def test_schemathesis_finds_no_issue(tmp_path: Path) -> None:
    stack = fuzz_stack(tmp_path).start()
    try:
        outcome = run_schemathesis(stack, sign_up(stack), EXAMPLES, 7, tmp_path / "report")
    finally:
        stack.stop()
    assert outcome.returncode == 0, outcome.output[-20_000:]
    assert "No issues found" in outcome.output, outcome.output[-5_000:]
