"""What the long runs started by hand (``make chaos``, ``overload``, ``fuzz``) share."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # so that the stack's processes are stopped on the way out


def new_run(name: str) -> Path:
    """A fresh folder under ``.local/<name>/`` for one run's logs; SIGTERM stops the run too."""
    signal.signal(signal.SIGTERM, interrupt)
    state = ROOT / ".local" / name
    state.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=state))
