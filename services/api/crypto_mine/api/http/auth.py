"""JWT authentication: ``Authorization: Bearer`` or the ``auth-token`` cookie; ``sub`` is the user.

A WebSocket may also carry its token in a subprotocol (``live_socket.py``), never in the URL.

HS256 with ``JWT_SECRET``; RS256 with keys from a JWKS URL. Verified tokens are cached until
they expire, so a busy client costs one signature check, not one per click.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import NamedTuple

import anyio.to_thread
import jwt
from starlette.requests import HTTPConnection, Request

from ..settings import ApiSettings
from .errors import ApiError
from .origin import require_same_site

log = logging.getLogger(__name__)

COOKIE = "auth-token"
_CACHE_LIMIT = 100_000
# What a user id (the token's ``sub``) may be: the id-allocator's numbers, and the usual
# subjects of identity providers ("auth0|5f...", UUIDs, e-mail-like ids). No ":", no spaces, no
# control characters: it becomes part of Redis key names and of log lines.
SUBJECT = re.compile(r"[A-Za-z0-9._~@|+=-]{1,64}")
SUBJECT_RULE = "1 to 64 characters of A-Z a-z 0-9 . _ ~ @ | + = -"


def valid_subject(sub: object) -> bool:
    return isinstance(sub, str) and SUBJECT.fullmatch(sub) is not None


# What a client is told about a token that fails, by the failure's kind (never the text of
# the library, which may change and can carry what the client sent back to it).
REASONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.InvalidSignatureError, "the signature does not match"),
    (jwt.DecodeError, "not a well-formed token"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.ImmatureSignatureError, "not valid yet"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
)


def reason(error: jwt.InvalidTokenError) -> str:
    for kind, text in REASONS:
        if isinstance(error, kind):
            return text
    return "rejected"


def unauthorized(detail: str) -> ApiError:
    return ApiError(
        401, "unauthorized", detail, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


class Identity(NamedTuple):
    user_id: str
    expires: float  # the token's exp, seconds since the epoch
    token: str

    @property
    def token_id(self) -> str:
        """A short digest naming the token (what logout revokes), never the token itself."""
        return hashlib.blake2b(self.token.encode(), digest_size=16).hexdigest()


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.jwks = (
            jwt.PyJWKClient(settings.auth.jwt_jwks_url) if settings.auth.jwt_jwks_url else None
        )
        self._verified: dict[str, Identity] = {}

    async def user_id(self, request: HTTPConnection, token: str | None = None) -> str:
        """The user of a request's token (``token``, else its header, else its cookie)."""
        return (await self.identity(request, token)).user_id

    async def identity(self, request: HTTPConnection, token: str | None = None) -> Identity:
        """The caller's user id, and the token it came with (``401`` without a valid one)."""
        token = token or self._token(request)
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires > time.time():
                return cached
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        identity = Identity(str(claims["sub"]), float(str(claims["exp"])), token)
        self._verified[token] = identity
        return identity

    def _token(self, request: HTTPConnection) -> str:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("Authorization must be 'Bearer <token>'.")
            return token.strip()
        cookie = request.cookies.get(COOKIE)
        if cookie:
            if isinstance(request, Request):  # a WebSocket's origin is checked by live_socket
                require_same_site(request)
            return cookie
        raise unauthorized("A bearer token or the auth-token cookie is required.")

    async def _verify(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in self.settings.auth.jwt_algorithms:
                raise unauthorized(f"Token algorithm {algorithm!r} is not accepted.")
            key: object = self.settings.auth.jwt_secret
            if algorithm == "RS256":
                assert self.jwks is not None
                signing = await anyio.to_thread.run_sync(self.jwks.get_signing_key_from_jwt, token)
                key = signing.key
            claims: dict[str, object] = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=self.settings.auth.jwt_audience,
                issuer=self.settings.auth.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Token has expired.") from None
        except jwt.PyJWKClientError as error:  # its text names the JWKS URL: logged only
            log.warning("token signing key not found: %s", error)
            raise unauthorized("Token signing key not found.") from None
        except jwt.InvalidTokenError as error:
            raise unauthorized(f"Token is invalid: {reason(error)}.") from None
        if not valid_subject(claims.get("sub")):
            raise unauthorized(f"Token subject must be a user id of {SUBJECT_RULE}.")
        return claims


def issue_token(settings: ApiSettings, user_id: str, ttl: int | None = None) -> str:
    """An HS256 token for ``user_id`` (sign-up, login and the development CLI)."""
    if not valid_subject(user_id):
        raise ValueError(f"A user id is {SUBJECT_RULE}, got {user_id!r}.")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "iat": now,
        "exp": now + (ttl or settings.auth.jwt_ttl_seconds),
    }
    if settings.auth.jwt_issuer:
        claims["iss"] = settings.auth.jwt_issuer
    if settings.auth.jwt_audience:
        claims["aud"] = settings.auth.jwt_audience
    return jwt.encode(claims, settings.auth.jwt_secret, algorithm="HS256")
