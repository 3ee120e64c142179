"""``python -m tests.load`` (``make load``): see ``tests/load/run.py``."""

from __future__ import annotations

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
