"""``python -m tests.chaos [--duration 150]``: the whole-stack fault run, with its summary.

Exits 0 when no accepted click was lost or counted twice and every other check held.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from .run import run_chaos

ROOT = Path(__file__).resolve().parents[2]


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # so that the stack's processes are stopped on the way out


def main() -> int:
    signal.signal(signal.SIGTERM, interrupt)
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=150, help="seconds of load and faults")
    parser.add_argument("--rate", type=float, default=60, help="new clicks per second")
    parser.add_argument("--fault-interval", type=float, default=5, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always")
    args = parser.parse_args()
    state = ROOT / ".local" / "chaos"
    state.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=state))
    print(f"chaos: {args.duration:.0f} s, logs in {folder}", flush=True)
    report = asyncio.run(
        run_chaos(
            folder,
            args.duration,
            rate=args.rate,
            fault_interval=args.fault_interval,
            seed=args.seed,
            fsync=args.fsync,
        )
    )
    print(report.summary())
    for failure in report.failures[:50]:
        print(f"  FAIL: {failure}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
