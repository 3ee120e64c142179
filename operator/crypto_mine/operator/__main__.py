"""``crypto-mine-operator``: run the QueueAutoscaler operator.

With leader election (the default), every replica stands by until it holds the Lease, then runs
kopf; a replica that loses the Lease stops kopf and exits, to come back as a candidate. Without
it (``LEADER_ELECTION=false``), kopf runs at once: one replica only.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import kopf

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import serve_metrics
from crypto_mine.common.settings import Env, SettingsError

from . import handlers, metrics
from .health import HealthServer
from .kube_client import KubeClient
from .leader import LeaderElector
from .settings import OperatorSettings

log = logging.getLogger(__name__)

# Exit code of a replica that lost the Lease: the kubelet restarts it as a candidate.
LOST_LEADERSHIP = 3
# Seconds kopf gets to stop its daemons once told to.
KOPF_STOP_TIMEOUT = 20.0


class KopfRecordFilter(logging.Filter):
    """kopf's object loggers attach their settings to every record: keep only the object."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        fields.pop("settings", None)
        fields.pop("k8s_skip", None)
        ref = fields.pop("k8s_ref", None)
        if isinstance(ref, dict):
            fields["object"] = f"{ref.get('kind')} {ref.get('namespace')}/{ref.get('name')}"
        return True


def main() -> None:
    try:
        settings = OperatorSettings.from_env(Env())
    except SettingsError as error:
        sys.exit(f"crypto-mine-operator: {error}")
    configure_logging("operator", settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfRecordFilter())
    # One line per liveness probe is noise.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    log.info("starting; handlers from %s", handlers.__name__)
    if settings.metrics_port:
        serve_metrics(settings.metrics_port)
    sys.exit(asyncio.run(run(settings)))


def _kopf(settings: OperatorSettings, memo: kopf.Memo, stop: asyncio.Event, **extra: Any) -> Any:
    return kopf.operator(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        memo=memo,
        stop_flag=stop,
        **extra,
    )


async def run(settings: OperatorSettings) -> int:
    """Stand by, lead, and stop: the exit code of the process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    memo = kopf.Memo(settings=settings)
    if settings.election is None:
        metrics.leader.set(1)
        await _kopf(settings, memo, stop, liveness_endpoint=settings.liveness_endpoint)
        return 0

    elector = LeaderElector(settings.election, KubeClient())
    memo.elector = elector
    kopf_stop = asyncio.Event()
    operator: asyncio.Task[None] | None = None

    def healthy() -> bool:
        if operator is None:  # standing by: alive while the API server answers
            return elector.contacted_recently()
        return not operator.done() and elector.leading()

    health = await HealthServer(settings.liveness_endpoint, healthy).start()
    try:
        metrics.leader.set(0)
        if not await elector.acquire(stop):
            return 0
        metrics.leader.set(1)
        operator = asyncio.create_task(_kopf(settings, memo, kopf_stop))
        holding = asyncio.create_task(elector.hold(stop))
        await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        lost = holding.done() and not stop.is_set()
        kopf_stop.set()
        await asyncio.wait({operator}, timeout=KOPF_STOP_TIMEOUT)
        holding.cancel()
        metrics.leader.set(0)
        if lost:
            return LOST_LEADERSHIP
        await elector.release()
        if operator.done() and not operator.cancelled() and operator.exception() is not None:
            log.error("kopf stopped: %r", operator.exception())
            return 1
        return 0
    finally:
        await health.stop()


if __name__ == "__main__":
    main()
