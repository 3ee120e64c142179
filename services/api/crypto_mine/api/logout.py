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

from crypto_mine.common import events

from .auth import COOKIE, Authenticator
from .settings import ApiSettings
from .shards import Shards

# KEYS: 1 the token's sign-out mark, 2 the user's event stream; ARGV: 1 token id, 2 ms until
# the token expires, 3 stream MAXLEN, 4 stream TTL in seconds, 5..8 the entry's field names
# and kind (crypto_mine.common.events).
SIGN_OUT_SCRIPT = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[5], ARGV[6], ARGV[7], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


class LogoutEndpoint:
    def __init__(self, settings: ApiSettings, auth: Authenticator, shards: Shards) -> None:
        self.settings = settings
        self.auth = auth
        self.shards = shards
        self.sign_outs = [shard.redis.register_script(SIGN_OUT_SCRIPT) for shard in shards.all]

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
