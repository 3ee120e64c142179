"""``crypto-mine-worker``: run the click worker pod's supervisor."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import MULTIPROC_ENV

from .settings import WorkerSettings


def prepare_metrics_dir() -> None:
    """Worker processes share their samples through files; start from an empty folder."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="crypto-mine-worker-metrics-")


def main() -> None:
    settings = WorkerSettings.from_env()  # fail fast, with the variable's name
    configure_logging("worker", settings.log_level)
    prepare_metrics_dir()
    from .supervisor import Supervisor  # after the metrics folder is known

    sys.exit(Supervisor(settings).run())


if __name__ == "__main__":
    main()
