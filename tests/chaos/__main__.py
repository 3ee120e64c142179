"""``python -m tests.chaos [--duration 150]``: the whole-stack fault run, with its summary.

Exits 0 when no accepted click was lost or counted twice and every other check held.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.support.runs import new_run

from .run import run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=150, help="seconds of load and faults")
    parser.add_argument("--rate", type=float, default=60, help="new clicks per second")
    parser.add_argument("--fault-interval", type=float, default=5, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always")
    parser.add_argument(
        "--shards", type=int, default=1, help="click shards, a Redis server and a worker pod each"
    )
    args = parser.parse_args()
    folder = new_run("chaos")
    print(f"chaos: {args.duration:.0f} s, logs in {folder}", flush=True)
    report = asyncio.run(
        run_chaos(
            folder,
            args.duration,
            rate=args.rate,
            fault_interval=args.fault_interval,
            seed=args.seed,
            fsync=args.fsync,
            shards=args.shards,
        )
    )
    print(report.summary())
    for failure in report.failures[:50]:
        print(f"  FAIL: {failure}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
