"""Run the api with uvicorn: ``crypto-mine-api`` (``HOST``, ``PORT``, ``WEB_CONCURRENCY``)."""

from __future__ import annotations

import uvicorn

from crypto_mine.common.logs import configure_logging
from crypto_mine.common.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from crypto_mine.common.settings import Env

from .head_limit import limit_from_env
from .settings import ApiSettings


def main() -> None:
    env = Env()
    settings = ApiSettings.from_env(env)  # fail fast, with the variable's name
    limit_from_env()
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
        http="crypto_mine.api.head_limit:HeadLimitProtocol",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # uvicorn kills a worker that does not answer its health ping in time (5 s by default)
        # and starts another: on a CPU-starved node a worker still importing misses it, and the
        # api never gets ready.
        timeout_worker_healthcheck=30,
    )


if __name__ == "__main__":
    main()
