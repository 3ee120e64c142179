"""``crypto-mine-id-allocator``: serve the allocator with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import sys

import uvicorn

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import serve_metrics
from crypto_mine.common.settings import SettingsError

from .app import create_app
from .settings import AllocatorSettings


def main() -> None:
    try:
        settings = AllocatorSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"crypto-mine-id-allocator: bad settings: {exc}")
    configure_logging("id-allocator", settings.log_level)
    if settings.metrics_port:
        serve_metrics(settings.metrics_port, addr=settings.host)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
