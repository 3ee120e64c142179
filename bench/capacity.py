"""Capacity model: what an offered load needs of each component, from measured costs.

The costs are ``make bench``'s phase 8 (``bench.json``): CPU µs per accepted click, per
click-status read and per balance read in each component. A load (clicks/s and reads per
click) times those costs is the CPU each component needs; at a target utilisation that is a
number of replicas of a given size. Redis runs commands on one thread, so a primary is one
core however big its machine: past that, admission must be sharded across primaries. The
first part to saturate is the one whose replicas reach 100 % at the lowest click rate.

``python -m bench.capacity --clicks 10000 [--bench .local/bench/bench.json]`` prints the plan;
``--check A.json B.json`` predicts the phase 1 throughput of each run (e.g. with 1 and 2 api
processes) from the first run's costs and prints it beside the measured one.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import cpu_per_answer
from .stack import ROOT

API, WORKER, REDIS, MONGODB = "api", "worker pod", "redis", "mongodb"
COMPONENTS = (API, WORKER, REDIS, MONGODB)
KINDS = ("click", "click_status", "balance")


@dataclass(frozen=True)
class Costs:
    """CPU µs per request of each kind (``KINDS``), by component; documents MongoDB stores per
    accepted click."""

    cpu_us: dict[str, dict[str, float]]
    documents_per_click: float

    @classmethod
    def from_bench(cls, document: dict[str, Any]) -> Costs:
        measured = document["results"]["8_cost"]
        return cls(
            cpu_us={kind: dict(measured[kind]["cpu_us"]) for kind in KINDS},
            documents_per_click=measured["click"]["mongodb"]["documents"]["all"],
        )


@dataclass(frozen=True)
class Load:
    clicks: float  # accepted clicks per second
    status_reads: float = 0.2  # click-status reads per accepted click
    balance_reads: float = 0.1  # balance reads per accepted click

    def per_click(self, costs: Costs) -> dict[str, float]:
        """CPU µs each component spends per accepted click, its share of the reads included."""
        shares = {"click": 1.0, "click_status": self.status_reads, "balance": self.balance_reads}
        return {
            part: sum(shares[kind] * costs.cpu_us[kind].get(part, 0.0) for kind in KINDS)
            for part in COMPONENTS
        }

    def cores(self, costs: Costs) -> dict[str, float]:
        return {part: self.clicks * us / 1e6 for part, us in self.per_click(costs).items()}


@dataclass(frozen=True)
class Replica:
    cores: float  # the CPU one replica can use (a Redis primary: 1, its one command thread)


# Sizes of one replica: an api pod with 1 CPU (1 uvicorn worker), a worker pod with 2 (its
# default concurrency), a Redis primary, a MongoDB shard's primary with 8.
REPLICAS = {API: Replica(1.0), WORKER: Replica(2.0), REDIS: Replica(1.0), MONGODB: Replica(8.0)}


@dataclass(frozen=True)
class Need:
    cores: float
    replicas: int
    utilisation: float  # of each replica, at the load


@dataclass(frozen=True)
class Plan:
    load: Load
    needs: dict[str, Need]
    ceilings: dict[str, float]  # clicks/s at which each part's replicas reach 100 %
    documents_per_second: float

    @property
    def first_bottleneck(self) -> str:
        return min(self.ceilings, key=lambda part: self.ceilings[part])


def plan(
    load: Load,
    costs: Costs,
    target: float = 0.7,
    replicas: dict[str, Replica] | None = None,
) -> Plan:
    """Replicas of each part for ``load`` at ``target`` utilisation, and where each saturates."""
    sizes = replicas or REPLICAS
    per_click = load.per_click(costs)
    needs = {}
    ceilings = {}
    for part, cores in load.cores(costs).items():
        count = max(1, math.ceil(cores / (sizes[part].cores * target)))
        needs[part] = Need(round(cores, 3), count, round(cores / (count * sizes[part].cores), 3))
        capacity = count * sizes[part].cores * 1e6
        ceilings[part] = round(capacity / per_click[part], 1) if per_click[part] else math.inf
    return Plan(load, needs, ceilings, round(load.clicks * costs.documents_per_click, 1))


def machine_ceiling(per_click: dict[str, float], cores: float, processes: dict[str, int]) -> float:
    """Clicks/s one machine of ``cores`` CPUs takes when every process shares them: the lower
    of the CPUs over the CPU µs of one click in all processes, and each single-threaded part's
    processes (``processes``: how many of it run) over its own µs."""
    shared = cores * 1e6 / sum(per_click.values())
    own = [count * 1e6 / per_click[part] for part, count in processes.items()]
    return min([shared, *own])


def phase1_per_click(document: dict[str, Any]) -> dict[str, float]:
    """CPU µs per accepted click of each process in make bench's phase 1 (the api taking clicks
    from wrk, no worker), medians over its runs."""
    runs = document["results"]["1_http"]["runs"]["api"]
    return {
        group: cpu_per_answer(runs, group, "accepted_at_server") for group in runs[0]["cpu_percent"]
    }


@dataclass(frozen=True)
class Check:
    processes: int  # api processes of the measured run
    predicted: float  # clicks/s, from the costs of the other run
    measured: float

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1


def check(costs_from: dict[str, Any], measured: dict[str, Any]) -> Check:
    """Phase 1's throughput of ``measured`` as predicted from the per-click costs of
    ``costs_from`` (another run, e.g. with another number of api processes) and this machine's
    CPUs: one Redis thread, ``web_workers`` api processes, everything sharing the CPUs."""
    processes = int(measured["options"]["web_workers"])
    predicted = machine_ceiling(
        phase1_per_click(costs_from),
        float(measured["results"]["machine"]["cpus"]),
        {API: processes, REDIS: 1},
    )
    actual = float(measured["results"]["1_http"]["api_accepted_per_second"])
    return Check(processes, round(predicted, 1), actual)


def render(result: Plan) -> str:
    lines = [
        f"{result.load.clicks:,.0f} clicks/s, {result.load.status_reads} status and "
        f"{result.load.balance_reads} balance reads per click",
        f"{'part':<11}{'cores':>9}{'replicas':>10}{'each at':>9}{'100 % at':>14}",
    ]
    for part, need in result.needs.items():
        lines.append(
            f"{part:<11}{need.cores:>9.2f}{need.replicas:>10}{need.utilisation:>9.0%}"
            f"{result.ceilings[part]:>12,.0f}/s"
        )
    lines.append(f"MongoDB documents stored: {result.documents_per_second:,.0f}/s")
    lines.append(f"first to saturate: {result.first_bottleneck}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--clicks", type=float, default=10_000, help="accepted clicks per second")
    parser.add_argument("--status-reads", type=float, default=0.2, help="per click")
    parser.add_argument("--balance-reads", type=float, default=0.1, help="per click")
    parser.add_argument("--target", type=float, default=0.7, help="utilisation to plan for")
    parser.add_argument("--bench", type=Path, default=ROOT / ".local" / "bench" / "bench.json")
    parser.add_argument(
        "--check",
        type=Path,
        nargs="+",
        metavar="BENCH_JSON",
        help="predict each run's phase 1 throughput from the first run's costs, and compare",
    )
    args = parser.parse_args(argv)
    if args.check:
        runs = [json.loads(path.read_text()) for path in args.check]
        for run in runs:
            found = check(runs[0], run)
            print(
                f"{found.processes} api process(es): predicted {found.predicted:,.0f}/s, "
                f"measured {found.measured:,.0f}/s ({found.error:+.0%})"
            )
        return
    costs = Costs.from_bench(json.loads(args.bench.read_text()))
    load = Load(args.clicks, args.status_reads, args.balance_reads)
    print(render(plan(load, costs, args.target)))


if __name__ == "__main__":
    main()
