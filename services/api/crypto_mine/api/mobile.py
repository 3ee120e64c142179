"""``GET /api/mobile-app/apk``: the mobile release's metadata, from the environment."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .errors import JSONResponse
from .settings import ApiSettings


class MobileEndpoint:
    def __init__(self, settings: ApiSettings) -> None:
        self.body = {
            "available": settings.mobile_apk_url is not None,
            "downloadUrl": settings.mobile_apk_url,
            "version": settings.mobile_apk_version,
            "buildDate": settings.mobile_apk_build_date,
            "releaseNotes": settings.mobile_apk_notes,
        }

    async def get(self, _: Request) -> Response:
        return JSONResponse(self.body, headers={"Cache-Control": "public, max-age=300"})
