"""Cookie-authenticated state changes must come from this site's own pages (no CSRF).

The ``auth-token`` cookie is ``SameSite=Lax``, which already keeps it off cross-site POSTs in
current browsers; this check does not rely on that. A request that changes state and is
authenticated by the cookie (not by an ``Authorization`` header, which no other site can make
a browser send) is refused with ``403`` when the browser says it comes from elsewhere:
``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (typed or bookmarked), or else an
``Origin`` whose host is not the request's ``Host``. Clients that send neither header (curl,
scripts, browsers too old to send them) are not browsers acting for another site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FROM_HERE = frozenset({"same-origin", "none"})
DEFAULT_PORTS = (":80", ":443")


def _host(value: str) -> str:
    value = value.strip().lower()
    for port in DEFAULT_PORTS:
        value = value.removesuffix(port)
    return value


def from_this_site(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() in FROM_HERE
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host")
    if host is None or origin.strip() == "null":
        return False
    return _host(urlsplit(origin.strip()).netloc) == _host(host)


def require_same_site(request: Request) -> None:
    """``403`` for a cookie-authenticated state change sent from another site."""
    if request.method in SAFE_METHODS or from_this_site(request):
        return
    raise ApiError(
        403,
        "cross_site_request",
        "A request authenticated by the auth-token cookie must come from this site's own "
        "pages; other clients send the token in an Authorization: Bearer header.",
    )
