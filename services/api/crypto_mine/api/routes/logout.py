"""``POST /api/auth/logout``: the ``auth-token`` cookie is cleared and the token's streams end.

One Redis script marks the token as signed out until it would have expired (no new event
stream opens with it) and appends a ``signout`` entry to the user's event stream, which every
api replica reads: each stream opened with that token ends at once, wherever it is served. A
token is a signed statement that stays valid until its ``exp`` for everything else (clicks,
status): keep ``JWT_TTL_SECONDS`` short where that matters. Authenticated like any other call;
with the cookie, only from this site's own pages (``origin.py``).
"""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common import scripts
from crypto_mine.pipeline import events

from .. import SCRIPTS
from ..admission.shards import Shards
from ..http.auth import COOKIE, Authenticator
from ..settings import ApiSettings
from .openapi_parts import SECURED, UNAUTHORIZED, UNAVAILABLE, Paths, error_answer


class LogoutEndpoint:
    def __init__(self, settings: ApiSettings, auth: Authenticator, shards: Shards) -> None:
        self.settings = settings
        self.auth = auth
        self.shards = shards
        sign_out = scripts.load(SCRIPTS, "sign_out.lua")
        self.sign_outs = [shard.redis.register_script(sign_out) for shard in shards.all]

    async def logout(self, request: Request) -> Response:
        identity = await self.auth.identity(request)
        remaining_ms = max(1, math.ceil((identity.expires - time.time()) * 1000))
        shard = self.shards.of(identity.user_id)
        await self.sign_outs[shard.index](
            keys=[shard.keys.signed_out(identity.token_id), shard.keys.events(identity.user_id)],
            args=[
                identity.token_id,
                remaining_ms,
                self.settings.events.maxlen,
                self.settings.events.ttl_seconds,
                events.TYPE_FIELD,
                events.SIGNOUT,
                events.SESSION_FIELD,
            ],
        )
        response = Response(status_code=204)
        response.delete_cookie(
            COOKIE,
            path="/",
            secure=self.settings.auth.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        return response


OPENAPI: Paths = {
    "/api/auth/logout": {
        "post": {
            "summary": "Sign out",
            "description": "Clears the auth-token cookie, ends every event stream opened "
            "with this token on every replica, and refuses it for new streams; the token "
            "stays valid for other calls until its exp.",
            "security": SECURED,
            "responses": {
                "204": {
                    "description": "Signed out.",
                    "headers": {
                        "Set-Cookie": {
                            "description": "`auth-token=; Max-Age=0` (the cookie is cleared).",
                            "schema": {"type": "string"},
                        }
                    },
                },
                "401": UNAUTHORIZED,
                "403": error_answer(
                    "Authenticated by the cookie, but sent from another site's page."
                ),
                "503": UNAVAILABLE,
            },
        }
    },
}
