"""Servers left behind by killed test runs.

mutmut kills a mutant's run when it times out, and so does the Lua harness; the Redis and
MongoDB servers that run had started (their folders are under its ``TMPDIR``) are then orphans.
Each run gets a ``TMPDIR`` inside its staging folder, and whatever still works there afterwards
is stopped: only processes whose working folder or command line is inside that folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def tmpdir(folder: Path) -> dict[str, str]:
    """The environment of runs whose temporary folders live in ``folder/tmp``."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(folder / "tmp")}


def stop_leftovers(folder: Path) -> int:
    """SIGTERM every process working in ``folder/tmp``; returns how many there were."""
    inside = str(folder / "tmp") + "/"
    stopped = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd") + "/"
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(inside) or inside in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)
                stopped += 1
    return stopped
