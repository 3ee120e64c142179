"""``python -m devstack`` (what ``make run`` starts) on free ports, watched through its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devstack.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PORTS = (
    "API_PORT",
    "ID_ALLOCATOR_PORT",
    "ID_ALLOCATOR_METRICS_PORT",
    "WORKER_METRICS_PORT",
    "REDIS_PORT",
    "MONGO_PORT",
)


@dataclass
class LocalRun:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['API_PORT']}"

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def local_run(state: Path, timeout: float = 90) -> Iterator[LocalRun]:
    """Start the stack with its state in ``state``; wait until it prints its example; Ctrl-C it
    on the way out (``process.returncode`` and ``lines`` then tell how it stopped)."""
    ports = {name: free_port() for name in PORTS}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DEVSTACK_STATE": str(state)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = LocalRun(process, ports)
    output = process.stdout
    assert output is not None
    reader = threading.Thread(target=lambda: run.lines.extend(output), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not any("Try it" in line for line in run.lines) and time.monotonic() < deadline:
            assert process.poll() is None, run.output
            time.sleep(0.2)
        assert any("crypto-mine is running" in line for line in run.lines), run.output
        yield run
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        reader.join(10)
        output.close()
