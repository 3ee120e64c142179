"""``python -m tests.mutation [NAME ...]``: the mutation score of each module of the core.

NAME: target names (``pipeline.ledger``, ``lua``; all by default). Writes
``.local/mutation/report.json``; exits 1 when a module keeps a mutant that is neither killed nor
explained, or kills fewer than ``--goal`` of its mutants.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import lua_mutants, python_mutants
from .targets import ROOT, TARGETS

EQUIVALENT = Path(__file__).with_name("equivalent.toml")
OUT = ROOT / ".local" / "mutation"


@dataclass
class Score:
    module: str
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    seconds: float = 0.0
    survivors: list[str] = field(default_factory=list)  # neither killed nor explained

    @property
    def score(self) -> float:
        """Killed among the mutants that can be killed (all but the explained ones)."""
        return self.killed / max(1, self.mutants - self.equivalent)

    @property
    def killed_share(self) -> float:
        return self.killed / max(1, self.mutants)


def explained() -> dict[tuple[str, str, str, str], str]:
    """(module, function, removed lines, added lines) -> why the mutant is equivalent."""
    listed = tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])
    return {
        (entry["module"], entry["function"], entry["was"].strip(), entry["now"].strip()): entry[
            "why"
        ]
        for entry in listed
    }


def score_python(name: str, children: int, known: dict[tuple[str, str, str, str], str]) -> Score:
    target = next(t for t in TARGETS if t.name == name)
    mutants, took = python_mutants.run(target, OUT / "python" / name, children)
    result = Score(f"{target.file}", len(mutants), seconds=took)
    for mutant in mutants:
        if mutant.killed:
            result.killed += 1
        elif (target.module, mutant.function, mutant.was, mutant.now) in known:
            result.equivalent += 1
        else:
            result.survivors.append(
                f"{mutant.name} [{mutant.status}] in {mutant.function}:\n"
                f"    - {mutant.was}\n    + {mutant.now}"
            )
    return result


def score_lua(children: int) -> list[Score]:
    started = time.monotonic()
    mutants = lua_mutants.load()
    results = lua_mutants.run(OUT / "lua", children, mutants)
    scores: dict[str, Score] = {}
    for result in results:
        path = result.mutant.script.path.split("crypto_mine/", 1)[1]
        score = scores.setdefault(path, Score(f"crypto_mine/{path}"))
        score.mutants += 1
        score.seconds += result.seconds / max(1, children)
        if result.killed:
            score.killed += 1
            if result.mutant.equivalent:
                score.survivors.append(
                    f"{result.mutant.name}: killed, but listed as equivalent: drop the entry"
                )
        elif result.mutant.equivalent:
            score.equivalent += 1
        else:
            score.survivors.append(f"{result.mutant.name} (nothing failed)")
    print(f"lua: {len(results)} mutants in {time.monotonic() - started:.0f}s")
    return list(scores.values())


def table(scores: Iterable[Score]) -> str:
    rows = [
        "| module | mutants | killed | equivalent | survived | score | killed/all | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        rows.append(
            f"| `{s.module}` | {s.mutants} | {s.killed} | {s.equivalent} | {len(s.survivors)} "
            f"| {s.score:.1%} | {s.killed_share:.1%} | {s.seconds / 60:.1f} min |"
        )
    return "\n".join(rows)


def main() -> int:
    names = [target.name for target in TARGETS] + ["lua"]
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(names))
    parser.add_argument("--children", type=int, default=2, help="mutants run at once (2)")
    parser.add_argument("--goal", type=float, default=0.9, help="share of mutants to kill (0.9)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = args.names or names
    known = explained()
    started = time.monotonic()
    scores: list[Score] = []
    for name in chosen:
        if name == "lua":
            scores += score_lua(args.children)
        else:
            scores.append(score_python(name, args.children, known))
            print(f"{name}: {scores[-1].killed}/{scores[-1].mutants} killed", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    report = [{**asdict(s), "score": s.score} for s in scores]
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(scores))
    print(f"total: {(time.monotonic() - started) / 60:.1f} min with {args.children} at once")
    failing = False
    for s in scores:
        for survivor in s.survivors:
            print(f"SURVIVED {s.module}: {survivor}")
        if s.survivors or s.killed_share < args.goal:
            failing = True
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
