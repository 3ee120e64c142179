"""The worker pod's main process: ``MINING_WORKER_CONCURRENCY`` worker processes, metrics, signals.

Each worker process runs one :class:`ClickWorker` (no fork per job). A process that dies is
started again (RQ itself quits when Redis vanishes at the wrong moment). On SIGTERM every process
finishes its current batch, takes no new one, and exits; the supervisor exits after them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.context import SpawnProcess
from types import FrameType

from prometheus_client import multiprocess

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import exposition_registry, serve_metrics
from crypto_mine.common.names import queue_name
from crypto_mine.common.redis import redis_client

from .marks import sweep_marks
from .reporter import QueueReporter
from .settings import WorkerSettings

log = logging.getLogger(__name__)

RESTART_BACKOFF_CAP = 10.0
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_worker(slot: int) -> None:
    """Body of one worker process."""
    die_with_parent()
    from rq import Queue
    from rq.serializers import JSONSerializer

    from .jobs import pipeline
    from .worker import ClickWorker

    settings = WorkerSettings.from_env()
    configure_logging("worker", settings.log_level)
    # RQ logs every job at INFO; the job function logs its own line per batch.
    rq_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    logging.getLogger("rq").setLevel(rq_level)
    connection = redis_client(settings.redis)
    queue = Queue(queue_name(settings.shard), connection=connection, serializer=JSONSerializer)
    worker = ClickWorker(
        [queue],
        connection=connection,
        settings=settings,
        after_sweep=lambda: sweep_marks(
            connection, pipeline().ledger, settings.shard, settings.shards
        ),
    )
    log.info("worker process %s started", slot, extra={"worker": worker.name})
    worker.work(with_scheduler=False, logging_level=rq_level)
    if pipeline.cache_info().currsize:
        pipeline().close()


class Supervisor:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, SpawnProcess] = {}
        self.failures: dict[int, int] = {}
        self.next_start: dict[int, float] = {}
        self.stopping = False

    def _start(self, slot: int) -> None:
        process = self.context.Process(target=run_worker, args=(slot,), name=f"worker-{slot}")
        process.start()
        self.processes[slot] = process

    def _stop(self, signum: int, _: FrameType | None) -> None:
        if self.stopping:
            return
        log.info("signal %s: finishing current batches", signal.Signals(signum).name)
        self.stopping = True
        for process in self.processes.values():
            if process.pid and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def _reap(self) -> None:
        for slot, process in list(self.processes.items()):
            if process.is_alive():
                continue
            process.join()
            if process.pid:
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
            del self.processes[slot]
            if self.stopping:
                continue
            self.failures[slot] = self.failures.get(slot, 0) + 1
            delay = min(RESTART_BACKOFF_CAP, 0.5 * 2 ** (self.failures[slot] - 1))
            log.warning(
                "worker process %s exited with %s; restarting in %.1fs",
                slot,
                process.exitcode,
                delay,
            )
            self.next_start[slot] = time.monotonic() + delay

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        reporter = QueueReporter(
            redis_client(self.settings.redis),
            self.settings.redis,
            self.settings.shard,
            self.settings.shards,
        ).start()
        registry = exposition_registry()
        registry.register(reporter)
        if self.settings.metrics_port:
            serve_metrics(self.settings.metrics_port, registry)
        for slot in range(self.settings.concurrency):
            self._start(slot)
        log.info("supervising %s worker processes", self.settings.concurrency)
        deadline: float | None = None
        while self.processes or (not self.stopping and self.next_start):
            time.sleep(0.2)
            self._reap()
            now = time.monotonic()
            if self.stopping:
                self.next_start.clear()
                deadline = deadline or now + self.settings.shutdown_grace_seconds
                if now > deadline:
                    for process in self.processes.values():
                        process.kill()
                continue
            for slot, at in list(self.next_start.items()):
                if now >= at:
                    del self.next_start[slot]
                    self._start(slot)
            for slot in self.processes:
                if slot in self.failures and now - self.next_start.get(slot, now) > 60:
                    self.failures.pop(slot, None)
        reporter.stop()
        log.info("all worker processes stopped")
        return 0
