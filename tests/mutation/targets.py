"""What is mutated, and which tests cover it (a mutant is run against these tests only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    """One Python module of a service package."""

    name: str  # e.g. "pipeline.ledger"
    package_dir: str  # the service folder holding crypto_mine/<package>
    tests: tuple[str, ...]

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    @property
    def module(self) -> str:
        return f"crypto_mine.{self.name}"

    @property
    def file(self) -> str:
        """The module's path below the package folder's parent (``crypto_mine/...``)."""
        return f"crypto_mine/{self.name.replace('.', '/')}.py"


TARGETS = (
    Target(
        "api.admission.idempotency",
        "services/api",
        (
            "tests/api/test_click.py",
            "tests/api/test_click_status.py",
            "tests/api/test_idempotency.py",
        ),
    ),
    Target(
        "api.http.clientip",
        "services/api",
        ("tests/api/test_limits.py", "tests/api/test_clientip.py"),
    ),
    Target(
        "pipeline.ledger",
        "services/pipeline",
        (
            "tests/pipeline/test_ledger.py",
            "tests/pipeline/test_ledger_edges.py",
            "tests/pipeline/test_outcome_events.py",
        ),
    ),
    Target(
        "pipeline.batches",
        "services/pipeline",
        (
            "tests/pipeline/test_batches.py",
            "tests/pipeline/test_batch_edges.py",
            "tests/pipeline/test_outcome_events.py",
        ),
    ),
    Target(
        "pipeline.outcomes",
        "services/pipeline",
        (
            "tests/pipeline/test_outcome_events.py",
            "tests/pipeline/test_batches.py",
            "tests/pipeline/test_batch_edges.py",
        ),
    ),
    Target("operator.decision", "operator", ("tests/operator/test_operator_decision.py",)),
    Target(
        "allocator.segments",
        "services/id-allocator",
        (
            "tests/allocator/test_allocator_segments.py",
            "tests/allocator/test_allocator_segment_edges.py",
        ),
    ),
    Target(
        "allocator.strict",
        "services/id-allocator",
        (
            "tests/allocator/test_allocator_strict.py",
            "tests/allocator/test_allocator_strict_edges.py",
        ),
    ),
)
