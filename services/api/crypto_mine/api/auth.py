"""JWT authentication: ``Authorization: Bearer`` or the ``auth-token`` cookie; ``sub`` is the user.

A WebSocket may also carry its token in a subprotocol (``live_socket.py``), never in the URL.

HS256 with ``JWT_SECRET``; RS256 with keys from a JWKS URL. Verified tokens are cached until
they expire, so a busy client costs one signature check, not one per click.
"""

from __future__ import annotations

import time

import anyio.to_thread
import jwt
from starlette.requests import HTTPConnection

from .errors import ApiError
from .settings import ApiSettings

COOKIE = "auth-token"
_CACHE_LIMIT = 100_000


def unauthorized(detail: str) -> ApiError:
    return ApiError(
        401, "unauthorized", detail, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self._verified: dict[str, tuple[str, float]] = {}

    async def user_id(self, request: HTTPConnection, token: str | None = None) -> str:
        """The user of a request's token (``token``, else its header, else its cookie)."""
        token = token or self._token(request)
        cached = self._verified.get(token)
        if cached is not None:
            user_id, expires = cached
            if expires > time.time():
                return user_id
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        user_id = str(claims["sub"])
        self._verified[token] = (user_id, float(str(claims["exp"])))
        return user_id

    def _token(self, request: HTTPConnection) -> str:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("Authorization must be 'Bearer <token>'.")
            return token.strip()
        cookie = request.cookies.get(COOKIE)
        if cookie:
            return cookie
        raise unauthorized("A bearer token or the auth-token cookie is required.")

    async def _verify(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in self.settings.jwt_algorithms:
                raise unauthorized(f"Token algorithm {algorithm!r} is not accepted.")
            key: object = self.settings.jwt_secret
            if algorithm == "RS256":
                assert self.jwks is not None
                signing = await anyio.to_thread.run_sync(self.jwks.get_signing_key_from_jwt, token)
                key = signing.key
            claims: dict[str, object] = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Token has expired.") from None
        except jwt.PyJWKClientError as error:
            raise unauthorized(f"Token signing key not found: {error}") from None
        except jwt.InvalidTokenError as error:
            raise unauthorized(f"Token is invalid: {error}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 64 or not sub.isprintable():
            raise unauthorized("Token subject must be a non-empty user id.")
        return claims


def issue_token(settings: ApiSettings, user_id: str, ttl: int | None = None) -> str:
    """An HS256 token for ``user_id`` (sign-up, login and the development CLI)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "iat": now,
        "exp": now + (ttl or settings.jwt_ttl_seconds),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
