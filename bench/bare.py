"""The bare baseline: one Starlette POST endpoint that reads the body and answers JSON."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def click(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "queued"}, status_code=202)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/mining/click", click, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
