"""Request bodies above ``MAX_BODY_BYTES`` get a JSON ``413``, whether announced or streamed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError


def too_large(limit: int) -> ApiError:
    return ApiError(413, "content_too_large", f"The request body exceeds {limit} bytes.")


def announced_too_large(scope: Scope, limit: int) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return not value.isdigit() or int(value) > limit
    return False


def limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 ``ApiError`` once the body passes ``limit`` bytes."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return receive_limited


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if announced_too_large(scope, self.limit):
            await too_large(self.limit).response()(scope, receive, send)
            return
        await self.app(scope, limited(receive, self.limit), send)
