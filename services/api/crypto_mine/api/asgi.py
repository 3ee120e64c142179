"""The ASGI application object for uvicorn's import string (one per worker process)."""

from __future__ import annotations

from crypto_mine.common.logs import configure_logging

from .app import create_app
from .settings import ApiSettings

settings = ApiSettings.from_env()
configure_logging("api", settings.log_level)
app = create_app(settings)
