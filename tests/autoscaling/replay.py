"""The recorded arrivals of a live run, replayed on a model of the same plant under each
autoscaler: same clicks, same pod start-up time and per-pod rate, only the decisions differ."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .controllers import Autoscaler, View
from .plant import World
from .trace import Sample


def replay(
    recorded: Sequence[Sample],
    autoscaler: Autoscaler,
    world: World,
    dt: float = 0.25,
    rate_window: float = 10.0,
) -> list[Sample]:
    """Pods start Ready ``world.startup`` s after the autoscaler asks for them; removed pods go
    at once, those not Ready yet first (as the ReplicaSet chooses). The apply rate an
    autoscaler sees is the clicks applied over the last ``rate_window`` seconds."""
    pods = [-world.startup] * recorded[0].spec  # creation times: the run starts with them Ready
    depth = recorded[0].depth
    # Scrapes half a period out of phase with the load's steps: the average delay, not the
    # best or worst case.
    seen, next_scrape = depth, autoscaler.metric_delay / 2
    samples: list[Sample] = []
    recent: deque[tuple[float, float]] = deque()
    index = 0
    t = recorded[0].t
    end = recorded[-1].t
    while t <= end:
        while index + 1 < len(recorded) and recorded[index + 1].t <= t:
            index += 1
        arrivals = recorded[index].arrivals
        ready = sum(1 for created in pods if t - created >= world.startup)
        depth += arrivals * dt
        applied = min(depth, ready * world.per_pod * dt)
        depth -= applied
        recent.append((t, applied))
        while recent[0][0] <= t - rate_window:
            recent.popleft()
        if t >= next_scrape:  # what Prometheus holds (no delay: read straight from Redis)
            seen = depth
            next_scrape += autoscaler.metric_delay
        rate = sum(a for _, a in recent) / rate_window
        desired = autoscaler.tick(View(t, len(pods), len(pods), seen, ready, rate))
        if desired is not None and desired > len(pods):
            pods += [t] * (desired - len(pods))
        elif desired is not None and desired < len(pods):
            pods.sort(key=lambda created: (t - created >= world.startup, -created))
            pods = pods[len(pods) - desired :]
        samples.append(Sample(t, arrivals, depth, len(pods), ready))
        t += dt
    return samples
