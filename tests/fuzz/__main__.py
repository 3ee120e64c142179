"""``python -m tests.fuzz [--max-examples 300]``: schemathesis against the running stack's api.

Starts the whole stack, signs a user up for a token, runs every schemathesis check against
``/openapi.json`` and exits with schemathesis's own status (0: no issue found).
"""

from __future__ import annotations

import argparse
import sys

from tests.support.runs import new_run

from .run import fuzz_stack, run_schemathesis, sign_up


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--max-examples", type=int, default=300, help="test cases per operation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    folder = new_run("fuzz")
    print(f"fuzz: the stack's logs and the report in {folder}", flush=True)
    stack = fuzz_stack(folder).start()
    try:
        outcome = run_schemathesis(
            stack, sign_up(stack), args.max_examples, args.seed, folder / "report"
        )
    finally:
        stack.stop()
    print(outcome.output)
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
