"""Real server processes on free loopback ports, stopped by PID.

Used by the test fixtures and by ``make run``. Nothing here is shipped in an image.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import redis
from pymongo import MongoClient

BIN = Path(sys.executable).parent
# Redis allocates a stream's first node whole, up to this size (its default, 4096, makes every
# user's event stream cost 4.5 KB however few its events; 512: 1 KB, 13 % more per event).
STREAM_NODE_MAX_BYTES = 512


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Let SIGTERM unwind like Ctrl-C, so that the ``finally`` blocks stop what was started."""
    signal.signal(signal.SIGTERM, _interrupt)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


class Startable(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


S = TypeVar("S", bound=Startable)


def serving(server: S) -> Iterator[S]:
    """``server`` started, then stopped once the caller is done with it (in a fixture:
    ``yield from serving(...)``)."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in listed.split()]


class Process:
    """One child process with its log file; stop() sends SIGTERM, then SIGKILL."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        if self.proc is not None and self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the process and everything in its session at once, as a node loss would."""
        if self.proc is not None and self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(10)

    def spawned_children(self) -> list[int]:
        """Its children started by ``multiprocessing`` spawn (not the resource tracker)."""
        if not self.alive():
            return []
        found = []
        for child in children(self.pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(child)
        return found

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


class RedisServer(Process):
    """A real redis-server on a free port, data under its own folder.

    ``aof`` turns on the append-only file; ``fsync`` is its ``appendfsync`` policy: ``always``
    makes every acknowledged write survive a crash of Redis or of the machine, ``everysec``
    may lose the last second or two of them.
    """

    def __init__(
        self, folder: Path, port: int | None = None, aof: bool = False, fsync: str = "everysec"
    ) -> None:
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            fsync,
            "--protected-mode",
            "no",
            # Each user's event stream starts as one node of this size (README, "Redis memory").
            "--stream-node-max-bytes",
            str(STREAM_NODE_MAX_BYTES),
            "--daemonize",
            "no",
        ]
        super().__init__(f"redis:{self.port}", argv, folder / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        super().start()
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        wait_until(lambda: bool(client.ping()), 10, self.name)
        client.close()
        return self


class MongoServer(Process):
    """The nx-27017 MongoDB wire-protocol server on a free port, data in one SQLite file."""

    def __init__(self, folder: Path, port: int | None = None, memory: bool = False) -> None:
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.pid_file = folder / "nx-27017.pid"
        argv = [
            str(BIN / "nx-27017"),
            "--db",
            "memory" if memory else str(folder / "mongo.db"),
            "--host",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--pid-file",
            str(self.pid_file),
            "--log-file",
            str(folder / "nx-27017.log"),
        ]
        super().__init__(f"mongo:{self.port}", argv, folder / "mongo.out")

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> MongoServer:
        # A pid file left by a killed instance blocks the next start.
        self.pid_file.unlink(missing_ok=True)
        super().start()
        client: MongoClient[dict[str, object]] = MongoClient(self.uri, serverSelectionTimeoutMS=300)
        wait_until(lambda: bool(client.admin.command("ping")), 15, self.name)
        client.close()
        return self

    def kill9(self) -> None:
        super().kill9()
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0) -> int | None:
        code = super().stop(timeout)
        self.pid_file.unlink(missing_ok=True)
        return code
