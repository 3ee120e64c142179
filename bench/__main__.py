"""``python -m bench``: the benchmark table, ``.local/bench/bench.json`` and ``bench.png``."""

from __future__ import annotations

import json
import sys
import time

from devstack.servers import stop_on_sigterm

from . import report
from .options import parse
from .run import Run
from .wrk import ensure_wrk


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    stop_on_sigterm()
    ensure_wrk()
    with Run(options) as run:
        results = run.all()
    found = report.rows(results, options)
    print(report.table(results, options, found), flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    document = report.to_json(results, options, found)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    history = options.out / "history"
    history.mkdir(exist_ok=True)
    for path in (options.out / "bench.json", history / f"bench-{stamp}.json"):
        path.write_text(json.dumps(document, indent=2) + "\n")
    report.chart(results, found, options.out / "bench.png")
    print(f"\nwritten: {options.out / 'bench.json'}, {options.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
