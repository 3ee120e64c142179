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
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
        memo=kopf.Memo(settings=settings),
    )


if __name__ == "__main__":
    main()
