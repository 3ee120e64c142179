"""``crypto-mine-operator``: run the QueueAutoscaler operator (one replica, no peering)."""

from __future__ import annotations

import logging
import sys

import kopf

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.settings import Env, SettingsError
from crypto_mine.operator import handlers
from crypto_mine.operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def main() -> None:
    try:
        settings = OperatorSettings.from_env(Env())
    except SettingsError as error:
        sys.exit(f"crypto-mine-operator: {error}")
    configure_logging("operator", settings.log_level)
    log.info("starting; handlers from %s", handlers.__name__)
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
        memo=kopf.Memo(settings=settings),
    )


if __name__ == "__main__":
    main()
