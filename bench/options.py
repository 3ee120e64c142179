"""How long and how hard each phase runs: the defaults of ``make bench`` and of ``--quick``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from .stack import ROOT, default_worker_concurrency

QUICK: dict[str, int | float] = {
    "users": 50,
    "warmup": 0.2,
    "seconds": 0.5,
    "repeats": 1,
    "monitor_seconds": 0.3,
    "sequential_seconds": 0.3,
    "worker_clicks": 600,
    "worker_users": 30,
    "worker_batch": 100,
    "e2e_clicks": 24,
    "e2e_warmup_clicks": 8,
    "ids_seconds": 0.2,
    "latency_seconds": 0.5,
    "read_seconds": 0.5,
    "naive_workers": 1,
}


@dataclass
class Options:
    out: Path
    quick: bool = False
    threads: int = 1  # wrk threads
    connections: int = 64  # wrk connections
    web_workers: int = 1  # WEB_CONCURRENCY of every HTTP server
    users: int = 1000  # distinct user tokens the load cycles through
    warmup: float = 1.0  # seconds of load before each measured server's first run
    seconds: float = 5.0  # each throughput run
    repeats: int = 3  # throughput runs per server, alternating bare and api
    monitor_seconds: float = 1.0  # MONITOR sample of the Redis commands
    sequential_seconds: float = 2.0  # one connection: the round trips of an unbatched click
    worker_clicks: int = 20_000  # phase 3 (tests/worker/bench_worker.py)
    worker_users: int = 2_000
    worker_batch: int = 250
    e2e_clicks: int = 1_500
    e2e_warmup_clicks: int = 128
    naive_workers: int = 0  # 0: as many as the worker pod's default concurrency
    ids_seconds: float = 3.0  # each row of phase 5 (tests/allocator/bench_ids.py)
    latency_seconds: float = 15.0
    latency_fraction: float = 0.7
    read_seconds: float = 5.0  # each kind of read of phase 8

    @property
    def naive_worker_count(self) -> int:
        return self.naive_workers or default_worker_concurrency()


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput, Redis cost, worker, end to end, ids and latency, side by side "
        "with baselines, on servers this run starts itself.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny durations (smoke test)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / ".local" / "bench", help="folder of results and logs"
    )
    defaults = Options(out=Path())
    for item in fields(Options):
        if item.name in ("out", "quick"):
            continue
        value = getattr(defaults, item.name)
        parser.add_argument(
            "--" + item.name.replace("_", "-"),
            type=type(value),
            default=None,
            help=f"default {value} ({QUICK.get(item.name, value)} with --quick)",
        )
    args = parser.parse_args(argv)
    options = Options(out=args.out, quick=args.quick)
    for item in fields(Options):
        if item.name in ("out", "quick"):
            continue
        given = getattr(args, item.name)
        if given is not None:
            setattr(options, item.name, given)
        elif args.quick and item.name in QUICK:
            setattr(options, item.name, QUICK[item.name])
    return options
