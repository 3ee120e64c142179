"""Headers every answer carries, added at the outermost layer (the click path included).

- ``X-Content-Type-Options: nosniff``: a browser never guesses another type than the one sent.
- ``Cache-Control: no-store`` on every answer that sets no caching of its own: answers are
  per user, and no shared or browser cache may keep them. The status endpoint keeps its
  documented ``private`` caching with an ETag, the demo page its ``no-cache``.
- ``Strict-Transport-Security`` (``HSTS_MAX_AGE``) on requests that came over TLS: to this
  process directly, or to a trusted proxy that says so in ``X-Forwarded-Proto``. Browsers
  ignore it over plain HTTP, so it is never sent there.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
BOTH = (NO_STORE, NOSNIFF)
OWN = frozenset(pair[0] for pair in BOTH)


def over_tls(scope: Scope, trusted_proxies: int) -> bool:
    if scope.get("scheme") == "https":
        return True
    if trusted_proxies == 0:
        return False
    for name, value in scope["headers"]:
        if name == b"x-forwarded-proto":
            # The proxy nearest to this process wrote the last value.
            nearest: bytes = value.rsplit(b",", 1)[-1]
            return nearest.strip().lower() == b"https"
    return False


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts_max_age: int, trusted_proxies: int) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.hsts = (
            (b"strict-transport-security", b"max-age=%d" % hsts_max_age) if hsts_max_age else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if self.hsts and over_tls(scope, self.trusted_proxies) else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                own = {name for name, _ in headers if name in OWN}
                if not own:
                    headers += BOTH
                else:
                    headers += [pair for pair in BOTH if pair[0] not in own]
                if hsts is not None:
                    headers.append(hsts)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
