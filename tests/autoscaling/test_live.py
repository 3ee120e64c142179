"""A short square wave through the real operator on the session's cluster, its worker pods run
by the node (``python -m tests.autoscaling`` runs the whole experiment): the operator reacts
within two poll intervals and scales down at most once per window."""

from __future__ import annotations

from pathlib import Path

import pytest

from .load import SquareWave
from .run import Setup, compare, run_live

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

SLACK = 1.0  # API and scheduling latency on a busy 2-core machine


def test_square_wave(kubeconfig: Path, tmp_path: Path) -> None:
    # Half the experiment's height: the queue model and the load share this machine with the
    # rest of the suite, and must keep up for the scale-down to be seen (at 400 clicks/s on a
    # busy machine the queue never drained within the run).
    wave = SquareWave(low=40, high=200, high_for=45, period=110, cycles=1, lead_in=15)
    setup = Setup(down_window=30, phases=(wave,))
    live = run_live(tmp_path, kubeconfig, setup)
    results = compare(live, setup)
    ours = results["operator (live)"]
    print({name: m.summary() for name, m in results.items()})  # the numbers, for `pytest -s`
    assert ours.reaction_patch, "the depth never crossed the target"
    assert max(ours.reaction_patch) <= 2 * setup.poll + SLACK
    assert ours.reaction_ready, "no new pod became Ready"
    assert ours.scale_downs >= 1, "the wave's end was never followed by a scale-down"
    assert ours.most_downs_per_window == 1
    assert live[-1].depth < setup.target
    # The replayed HPA and KEDA see the depth 30 s late: the operator reacts sooner.
    for name in ("hpa (mode hpa, same values)", "keda (defaults)"):
        assert min(results[name].reaction_patch) > max(ours.reaction_patch)
