"""``python -m tests.autoscaling [--replay trace.jsonl]``: the autoscaling experiment.

Runs the square wave and the ramp against the operator on a Kubernetes API server
(``KUBECONFIG``, else a local control plane) with a simulated node, records the run in
``.local/autoscaling/run-*/trace.jsonl``, then replays its arrivals under the operator's
decision, the HPA algorithm and KEDA's defaults and prints one table. ``--replay`` skips the
live run and replays a recorded trace.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.support.cluster import local_cluster
from tests.support.runs import new_run

from .run import Setup, compare, run_live, table, write_report
from .trace import load, save


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.autoscaling", description=__doc__)
    parser.add_argument("--replay", type=Path, help="a trace.jsonl of an earlier run")
    parser.add_argument("--duration", type=float, help="seconds of load (default: all phases)")
    args = parser.parse_args()
    setup = Setup()
    folder = new_run("autoscaling")
    if args.replay:
        live = load(args.replay)
    else:
        print(f"autoscaling: {args.duration or setup.duration:.0f} s of load, in {folder}")
        with local_cluster(folder / "cluster") as kubeconfig:
            live = run_live(folder, kubeconfig, setup, args.duration)
        save(live, folder / "trace.jsonl")
    results = compare(live, setup)
    print(table(results))
    print(f"report: {write_report(folder, live, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
