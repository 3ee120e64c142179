"""The demo page at ``/``: sign up or in, mine, and watch the balance change live.

Plain HTML, CSS and JavaScript from ``static/`` in this package, no build step. The script is
a file of its own, so the Content-Security-Policy allows no inline script or style at all.

With ``CDN_BASE_URL`` the page loads its script and style from the CDN, which pulls them from
``/static/`` here: each URL names the file's version (``?v=``, so a deploy never meets a stale
copy), carries its Subresource Integrity hash (a CDN serving anything else is refused by the
browser) and is allowed by the Content-Security-Policy; the assets then allow CORS reads.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from ..http.errors import ApiError
from .openapi_parts import Paths, error_answer
from .status import etag_of, matches

INDEX = "index.html"
MEDIA_TYPES = {
    INDEX: "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
ASSETS = ("app.css", "app.js")


def content_security_policy(cdn: str | None = None) -> str:
    sources = f"'self' {cdn}" if cdn else "'self'"
    return (
        f"default-src 'none'; script-src {sources}; style-src {sources}; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def integrity(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def version_of(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=6).hexdigest()


def from_cdn(index: bytes, files: dict[str, bytes], cdn: str) -> bytes:
    """The page with its assets' URLs on the CDN, versioned and with their integrity hashes."""
    page = index.decode()
    for name in ASSETS:
        version = version_of(files[name])
        local = f'"/static/{name}"'
        assert local in page, name
        page = page.replace(
            local,
            f'"{cdn}/static/{name}?v={version}" integrity="{integrity(files[name])}" '
            'crossorigin="anonymous"',
        )
    return page.encode()


class DemoPage:
    """Serves the page and its two assets from memory, revalidated by ETag."""

    def __init__(self, cdn_base_url: str | None = None) -> None:
        folder = resources.files(__package__) / "static"
        self.files = {name: (folder / name).read_bytes() for name in MEDIA_TYPES}
        self.headers = {**SECURITY_HEADERS}
        self.asset_headers = {**SECURITY_HEADERS}
        if cdn_base_url:
            self.files[INDEX] = from_cdn(self.files[INDEX], self.files, cdn_base_url)
            self.headers["Content-Security-Policy"] = content_security_policy(cdn_base_url)
            # The CDN hands these public files to the page's origin, which reads them with CORS.
            self.asset_headers["Access-Control-Allow-Origin"] = "*"
            self.asset_headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        self.etags = {name: etag_of(body) for name, body in self.files.items()}
        self.versions = {name: version_of(self.files[name]) for name in ASSETS}

    async def index(self, request: Request) -> Response:
        return self._serve(INDEX, request)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["asset"]
        if name == INDEX or name not in self.files:
            raise ApiError(404, "not_found", f"No asset named {name!r}.")
        return self._serve(name, request)

    def _serve(self, name: str, request: Request) -> Response:
        # Weak: the gzip and the identity encodings of a file share it.
        base = self.headers if name == INDEX else self.asset_headers
        # A URL naming this very version (the CDN's) never changes; others are revalidated.
        version = request.query_params.get("v")
        fixed = version is not None and version == self.versions.get(name)
        cache = "public, max-age=31536000, immutable" if fixed else "no-cache"
        headers = {**base, "ETag": "W/" + self.etags[name], "Cache-Control": cache}
        if matches(request.headers.get("if-none-match"), self.etags[name]):
            return Response(status_code=304, headers=headers)
        return Response(self.files[name], headers=headers, media_type=MEDIA_TYPES[name])


OPENAPI: Paths = {
    "/": {
        "get": {
            "summary": "The demo page: sign up or in, mine, watch the balance live",
            "responses": {
                "200": {
                    "description": "HTML page (its script and style under /static/).",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/static/{asset}": {
        "get": {
            "summary": "The demo page's script and style sheet",
            "parameters": [
                {
                    "name": "asset",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["app.js", "app.css"]},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                "304": {"description": "Not modified."},
                "404": error_answer("No such asset."),
            },
        }
    },
}
