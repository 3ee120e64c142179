"""What the long runs started by hand (``make chaos``, ``overload``, ``fuzz``) share."""

from __future__ import annotations

import tempfile
from pathlib import Path

from devstack.servers import stop_on_sigterm

ROOT = Path(__file__).resolve().parents[2]


def new_run(name: str) -> Path:
    """A fresh folder under ``.local/<name>/`` for one run's logs; SIGTERM stops the run too."""
    stop_on_sigterm()
    state = ROOT / ".local" / name
    state.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=state))
