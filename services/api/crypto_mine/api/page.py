"""The demo page at ``/``: sign up or in, mine, and watch the balance change live.

Plain HTML, CSS and JavaScript from ``static/`` in this package, no build step. The script is
a file of its own, so the Content-Security-Policy allows no inline script or style at all.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError
from .status import etag_of, matches

INDEX = "index.html"
MEDIA_TYPES = {
    INDEX: "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class DemoPage:
    """Serves the page and its two assets from memory, revalidated by ETag."""

    def __init__(self) -> None:
        folder = resources.files(__package__) / "static"
        self.files = {name: (folder / name).read_bytes() for name in MEDIA_TYPES}
        self.etags = {name: etag_of(body) for name, body in self.files.items()}

    async def index(self, request: Request) -> Response:
        return self._serve(INDEX, request)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["asset"]
        if name == INDEX or name not in self.files:
            raise ApiError(404, "not_found", f"No asset named {name!r}.")
        return self._serve(name, request)

    def _serve(self, name: str, request: Request) -> Response:
        # Weak: the gzip and the identity encodings of a file share it.
        headers = {**SECURITY_HEADERS, "ETag": "W/" + self.etags[name], "Cache-Control": "no-cache"}
        if matches(request.headers.get("if-none-match"), self.etags[name]):
            return Response(status_code=304, headers=headers)
        return Response(self.files[name], headers=headers, media_type=MEDIA_TYPES[name])
