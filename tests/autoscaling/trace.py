"""A run of the experiment, sample by sample, and what it shows: reaction times, scale-downs
per window, how fast the queue drains, and what the replicas cost."""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the start of the load
    arrivals: float  # clicks/s arriving
    depth: float  # clicks waiting
    spec: int  # replicas asked of the Deployment
    ready: int  # Ready replicas


@dataclass(frozen=True)
class Measures:
    reaction_patch: list[float]  # depth over the target -> replicas patched, per crossing
    reaction_ready: list[float]  # depth over the target -> one more pod Ready, per crossing
    scale_ups: int
    scale_downs: int
    most_downs_per_window: int  # the most scale-downs in any span of one window
    reversals: int  # up after down, or down after up
    drain: list[float | None]  # end of each high phase -> queue back under one replica's target
    max_depth: float
    mean_wait: float  # seconds a click waits, on average (Little's law: mean depth / arrivals)
    final_depth: float
    replica_seconds: float

    def summary(self) -> dict[str, Any]:
        def stats(values: Sequence[float]) -> str:
            if not values:
                return "-"
            return f"{statistics.median(values):.1f} / {max(values):.1f} (n={len(values)})"

        drained = [d for d in self.drain if d is not None]
        return {
            "reaction to patch, median / max (s)": stats(self.reaction_patch),
            "reaction to Ready, median / max (s)": stats(self.reaction_ready),
            "scale-ups / scale-downs": f"{self.scale_ups} / {self.scale_downs}",
            "most scale-downs in one window": self.most_downs_per_window,
            "direction reversals": self.reversals,
            "drained after each high phase (s)": (
                ", ".join("never" if d is None else f"{d:.0f}" for d in self.drain) or "-"
            ),
            "drain median (s)": f"{statistics.median(drained):.0f}" if drained else "-",
            "max depth": f"{self.max_depth:.0f}",
            "mean wait of a click (s)": f"{self.mean_wait:.2f}",
            "depth at the end": f"{self.final_depth:.0f}",
            "replica-seconds": f"{self.replica_seconds:.0f}",
        }


def measure(samples: Sequence[Sample], target: float, window: float, most: int) -> Measures:
    """``target``: depth per replica; ``window``: the span to count scale-downs in; ``most``:
    maxReplicas (no reaction is expected at it).

    A crossing is the depth rising over ``spec * target`` (more replicas needed); its reaction
    ends with the first patch that adds replicas, then the first new pod Ready. A crossing
    whose depth falls back under before any patch needed none and is not counted.
    """
    patch: list[float] = []
    ready: list[float] = []
    pending: tuple[float, int, int] | None = None  # (crossed at, spec then, ready then)
    patched = False
    ups: list[float] = []
    downs: list[float] = []
    directions: list[int] = []
    for previous, sample in itertools.pairwise(samples):
        over = sample.depth > sample.spec * target
        crossing = over and previous.depth <= previous.spec * target
        if pending is None and crossing and sample.spec < most:
            pending, patched = (sample.t, sample.spec, sample.ready), False
        if sample.spec != previous.spec:
            (ups if sample.spec > previous.spec else downs).append(sample.t)
            directions.append(1 if sample.spec > previous.spec else -1)
        if pending is None:
            continue
        crossed, spec_then, ready_then = pending
        if not patched and sample.spec > spec_then:
            patch.append(sample.t - crossed)
            patched = True
        elif not patched and not over:
            pending = None
            continue
        if patched and sample.ready > ready_then:
            ready.append(sample.t - crossed)
            pending = None
    reversals = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    crowded = max((sum(1 for d in downs if t <= d < t + window) for t in downs), default=0)
    spans = [(a, b.t - a.t) for a, b in itertools.pairwise(samples)]
    cost = sum(a.spec * dt for a, dt in spans)
    waiting = sum(a.depth * dt for a, dt in spans)
    arrived = sum(a.arrivals * dt for a, dt in spans)
    return Measures(
        reaction_patch=patch,
        reaction_ready=ready,
        scale_ups=len(ups),
        scale_downs=len(downs),
        most_downs_per_window=crowded,
        reversals=reversals,
        drain=_drain_times(samples, target),
        max_depth=max((s.depth for s in samples), default=0.0),
        mean_wait=waiting / arrived if arrived else 0.0,
        final_depth=samples[-1].depth if samples else 0.0,
        replica_seconds=cost,
    )


def _drain_times(samples: Sequence[Sample], target: float) -> list[float | None]:
    """From each drop of the arrival rate by half or more, to the depth under one target."""
    times: list[float | None] = []
    peak = 0.0
    start: float | None = None
    for previous, sample in itertools.pairwise(samples):
        peak = max(peak, previous.arrivals)
        if start is None and peak > 0 and sample.arrivals <= peak / 2 < previous.arrivals:
            start = sample.t
            times.append(None)
        if start is not None and sample.depth < target:
            times[-1] = sample.t - start
            start, peak = None, 0.0
    return times


def save(samples: Sequence[Sample], path: Path) -> None:
    path.write_text("\n".join(json.dumps(asdict(s)) for s in samples) + "\n")


def load(path: Path) -> list[Sample]:
    return [Sample(**json.loads(line)) for line in path.read_text().splitlines() if line]
