"""Load from ``wrk`` with the Lua scripts in ``lua/``: timed, paced or counted runs."""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
MARKER = "WRK_JSON "
PATH = "/api/mining/click"
# wrk runs "forever" and is stopped with SIGINT, so runs may last fractions of a second.
FOREVER = "3600s"


@dataclass
class WrkResult:
    seconds: float
    requests: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    ok: int  # 2xx answers counted by the Lua script (counted runs only)
    statuses: dict[str, int]
    cpu_percent: float  # of one core, wrk itself
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Answers >= 400 plus socket errors and timeouts."""
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "requests_per_second": round(self.rate, 1),
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "ok": self.ok,
            "statuses": self.statuses,
            "wrk_cpu_percent": self.cpu_percent,
        }


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is missing: scripts/ensure-apt.sh wrk")
    return found


class Wrk:
    """``wrk`` against one URL path with a token file; every key is unique (prefix per run)."""

    def __init__(self, folder: Path, tokens: Path, threads: int, connections: int) -> None:
        self.binary = ensure_wrk()
        self.folder = folder
        self.tokens = tokens
        self.threads = threads
        self.connections = connections
        folder.mkdir(parents=True, exist_ok=True)
        self.scripts = {
            mode: self._script(mode, parts)
            for mode, parts in {
                "timed": ["threads", "click", "summary"],
                "paced": ["threads", "click", "paced", "summary"],
                "counted": ["threads", "click", "quota", "summary"],
                "read": ["threads", "read", "summary"],
            }.items()
        }

    def _script(self, mode: str, parts: list[str]) -> Path:
        path = self.folder / f"{mode}.lua"
        path.write_text("\n".join((LUA / f"{part}.lua").read_text() for part in parts))
        return path

    def _argv(
        self, mode: str, url: str, threads: int, connections: int, data: Path | None = None
    ) -> list[str]:
        return [
            self.binary,
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{FOREVER}",
            "--timeout",
            "10s",
            "-s",
            str(self.scripts[mode]),
            url + PATH,
            "--",
            str(data or self.tokens),
        ]

    def reads(self, url: str, seconds: float, requests: list[tuple[str, str]]) -> WrkResult:
        """GET ``requests`` ((path, bearer token) pairs) in turn for ``seconds``."""
        data = self.folder / "reads.tsv"
        data.write_text("".join(f"{path}\t{token}\n" for path, token in requests))
        argv = self._argv("read", url, self.threads, self.connections, data)
        return self._run(argv, lambda: time.sleep(seconds))

    def timed(
        self, url: str, seconds: float, prefix: str, connections: int | None = None
    ) -> WrkResult:
        """As fast as the connections go, for ``seconds``."""
        connections = connections or self.connections
        threads = min(self.threads, connections)
        argv = [*self._argv("timed", url, threads, connections), prefix]
        return self._run(argv, lambda: time.sleep(seconds))

    def paced(self, url: str, seconds: float, prefix: str, rate: float) -> WrkResult:
        """At ``rate`` requests/s in all (spread over the threads), for ``seconds``."""
        argv = [
            *self._argv("paced", url, self.threads, self.connections),
            prefix,
            f"{rate / self.threads:.3f}",
        ]
        return self._run(argv, lambda: time.sleep(seconds))

    def counted(self, url: str, clicks: int, prefix: str, timeout: float) -> WrkResult:
        """Exactly ``clicks`` clicks, until each got its 2xx answer."""
        done = self.folder / f"done-{prefix}"
        done.mkdir(parents=True, exist_ok=True)
        threads = min(self.threads, clicks)
        argv = [
            *self._argv("counted", url, threads, min(self.connections, clicks)),
            prefix,
            "0",
            str(clicks),
            str(threads),
            str(done),
        ]

        def wait() -> None:
            deadline = time.monotonic() + timeout
            while len(list(done.glob("*.done"))) < threads:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"wrk did not get {clicks} 2xx answers in {timeout:.0f}s")
                time.sleep(0.005)

        return self._run(argv, wait)

    def _run(self, argv: list[str], wait: Any) -> WrkResult:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.05)  # wrk installs its SIGINT handler first thing
            wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        line = next((ln for ln in out.splitlines() if ln.startswith(MARKER)), None)
        if line is None:
            raise RuntimeError(f"wrk gave no summary ({argv}):\n{out}\n{err}")
        raw = json.loads(line.removeprefix(MARKER))
        latency = raw["latency_us"]
        return WrkResult(
            seconds=raw["duration_us"] / 1e6,
            requests=raw["requests"],
            errors=raw["errors"],
            latency_ms={name: round(value / 1000, 3) for name, value in latency.items()},
            ok=raw["counted"]["ok"],
            statuses=raw["counted"]["statuses"],
            cpu_percent=round(100 * cpu / elapsed, 1),
            raw=raw,
        )
