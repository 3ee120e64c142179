"""Serve an ASGI application exactly as ``crypto-mine-api`` serves the api.

    python -m bench.serve bench.bare:app

The api's own entry point runs with ``uvicorn.run`` swapped for one that serves the given
import string instead, so the options (loop, HTTP parser, access log, workers from
``WEB_CONCURRENCY``, ...) are the api's, whatever they become.
"""

from __future__ import annotations

import sys
from typing import Any
from unittest import mock

import uvicorn

from crypto_mine.api import __main__ as api_main


def main() -> None:
    if len(sys.argv) != 2 or ":" not in sys.argv[1]:
        sys.exit("usage: python -m bench.serve MODULE:APP")
    target = sys.argv[1]
    serve = uvicorn.run

    def run(_: Any, **options: Any) -> None:
        serve(target, **options)

    with mock.patch.object(uvicorn, "run", run):
        api_main.main()


if __name__ == "__main__":
    main()
