"""Run the api with uvicorn: ``crypto-mine-api`` (``HOST``, ``PORT``, ``WEB_CONCURRENCY``)."""

from __future__ import annotations

import sys

import uvicorn

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from crypto_mine.common.settings import Env, SettingsError

from .http.http_limits import HttpLimits
from .settings import ApiSettings

# /api/mining/ws only sends: what a client sends is read and ignored, and kept this small.
WS_MAX_MESSAGE_BYTES = 4096


def main() -> None:
    env = Env()
    try:
        settings = ApiSettings.from_env(env)  # fail fast, with the variable's name
        HttpLimits.from_env()
    except SettingsError as error:
        sys.exit(f"crypto-mine-api: bad settings: {error}")
    configure_logging("api", settings.log_level)
    workers = env.int("WEB_CONCURRENCY", 1, min=1)
    if workers > 1 or env.optional(MULTIPROC_ENV):
        prepare_multiprocess_dir()  # several processes, or a folder named by the deployment
    uvicorn.run(
        "crypto_mine.api.asgi:app",
        host=env.str("HOST", "0.0.0.0"),  # noqa: S104 - containers listen on all interfaces
        port=env.int("PORT", 8080, min=1, max=65535),
        workers=workers,
        loop="uvloop",
        http="crypto_mine.api.http.http_limits:LimitedHttpProtocol",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        # wsproto: its refusals of a handshake (401, 403, 429 with a JSON body) end cleanly;
        # uvicorn's websockets-sansio protocol logs each one as an error.
        ws="wsproto",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=10,
        # uvicorn kills a worker that does not answer its health ping in time (5 s by default)
        # and starts another: on a CPU-starved node a worker still importing misses it, and the
        # api never gets ready.
        timeout_worker_healthcheck=30,
    )


if __name__ == "__main__":
    main()
