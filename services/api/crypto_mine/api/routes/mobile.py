"""``GET /api/mobile-app/apk``: the mobile release's metadata, from the environment.

Cached for five minutes by shared caches; a client that revalidates (the demo page does when
its window regains focus) gets ``304`` for an unchanged release by its ``ETag``.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..http.errors import JSONResponse
from ..settings import ApiSettings
from .openapi_parts import Paths, json_answer, ref
from .status import etag_of, matches

CACHE_CONTROL = "public, max-age=300"


class MobileEndpoint:
    def __init__(self, settings: ApiSettings) -> None:
        self.body = {
            "available": settings.mobile.apk_url is not None,
            "downloadUrl": settings.mobile.apk_url,
            "version": settings.mobile.apk_version,
            "buildDate": settings.mobile.apk_build_date,
            "releaseNotes": settings.mobile.apk_notes,
        }
        self.etag = etag_of(orjson.dumps(self.body))

    async def get(self, request: Request) -> Response:
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": self.etag}
        if matches(request.headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse(self.body, headers=headers)


OPENAPI: Paths = {
    "/api/mobile-app/apk": {
        "get": {
            "summary": "Mobile release metadata",
            "parameters": [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": json_answer(ref("MobileApk"), "Metadata.", ["ETag", "Cache-Control"]),
                "304": {"description": "Not modified."},
            },
        }
    },
}
