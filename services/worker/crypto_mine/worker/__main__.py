"""``crypto-mine-worker``: run the click worker pod's supervisor."""

from __future__ import annotations

import sys

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import prepare_multiprocess_dir
from crypto_mine.common.settings import SettingsError

from .settings import WorkerSettings


def main() -> None:
    try:
        settings = WorkerSettings.from_env()  # fail fast, with the variable's name
    except SettingsError as error:
        sys.exit(f"crypto-mine-worker: bad settings: {error}")
    configure_logging("worker", settings.log_level)
    prepare_multiprocess_dir()
    from .supervisor import Supervisor

    sys.exit(Supervisor(settings).run())


if __name__ == "__main__":
    main()
