"""What a run shows, computed from samples (trace.py), on small traces worked out by hand."""

from __future__ import annotations

from pathlib import Path

from .trace import Sample, load, measure, save


def run(*rows: tuple[float, float, float, int, int]) -> list[Sample]:
    return [Sample(*row) for row in rows]


def test_reaction_from_the_crossing_to_the_patch_and_the_first_new_pod_ready() -> None:
    samples = run(
        (0, 40, 50, 1, 1),
        (1, 400, 150, 1, 1),  # 150 > 1 x 100: more replicas needed from here
        (2, 400, 450, 1, 1),
        (3, 400, 700, 5, 1),  # patched 2 s after the crossing
        (4, 400, 800, 5, 1),
        (6, 400, 600, 5, 5),  # ready 5 s after
        (8, 40, 0, 5, 5),
    )
    measures = measure(samples, target=100, window=60, most=10)
    assert measures.reaction_patch == [2]
    assert measures.reaction_ready == [5]
    assert (measures.scale_ups, measures.scale_downs) == (1, 0)
    assert measures.max_depth == 800
    assert measures.drain == [0]  # the arrivals halve at t=8 with the queue already empty
    assert measures.replica_seconds == 1 * 3 + 5 * 5
    waited = 50 + 150 + 450 + 700 + 800 * 2 + 600 * 2  # depth x seconds
    assert measures.mean_wait == waited / (40 + 400 * 3 + 400 * 2 + 400 * 2)
    assert measures.final_depth == 0


def test_a_crossing_that_passes_by_itself_is_not_a_reaction() -> None:
    samples = run((0, 40, 50, 1, 1), (1, 150, 150, 1, 1), (2, 40, 50, 1, 1), (3, 40, 0, 1, 1))
    assert measure(samples, target=100, window=60, most=10).reaction_patch == []


def test_no_reaction_is_expected_at_max_replicas() -> None:
    samples = run((0, 400, 900, 10, 10), (1, 400, 1500, 10, 10), (2, 400, 2000, 10, 10))
    assert measure(samples, target=100, window=60, most=10).reaction_patch == []


def test_scale_downs_are_counted_per_window_and_reversals_per_change_of_direction() -> None:
    samples = run(
        (0, 0, 0, 8, 8),
        (10, 0, 0, 6, 6),
        (40, 0, 0, 4, 4),  # two downs within 60 s
        (200, 0, 0, 3, 3),
        (210, 0, 900, 6, 3),
        (300, 0, 0, 5, 5),
    )
    measures = measure(samples, target=100, window=60, most=10)
    assert (measures.scale_downs, measures.most_downs_per_window) == (4, 2)
    assert measures.reversals == 2


def test_drain_time_from_the_drop_of_the_arrivals_to_an_empty_queue() -> None:
    samples = run(
        (0, 400, 900, 8, 8),
        (10, 40, 900, 8, 8),  # the load halves
        (20, 40, 500, 8, 8),
        (35, 40, 80, 8, 8),  # under one replica's target: drained 25 s after the drop
        (40, 40, 0, 8, 8),
    )
    assert measure(samples, target=100, window=60, most=10).drain == [25]


def test_traces_round_trip(tmp_path: Path) -> None:
    samples = run((0, 1.5, 2.5, 3, 4), (0.25, 2, 3, 4, 5))
    save(samples, tmp_path / "trace.jsonl")
    assert load(tmp_path / "trace.jsonl") == samples
