"""``POST /api/auth/register`` and ``POST /api/auth/login``: accounts with argon2 passwords.

Sign-up: input checks -> attempt limit -> username free? -> argon2 hash (in a thread) -> user
id from the id-allocator -> insert into ``users``, whose unique index on the lowercased username
settles concurrent sign-ups -> token. Nothing is written before the id-allocator answered.
A pooled MongoDB connection that died with a restarted server fails the first write sent on it;
the index creation and the insert are tried once more on a fresh connection, and a retried
insert that meets its own first attempt (same id, same username) counts as done.

Sign-up attempts are limited per client IP (``REGISTER_MAX_ATTEMPTS`` per
``REGISTER_WINDOW_SECONDS``) with the login limiter's script, counted before any work and
failing closed the same way, so a flood of sign-ups cannot burn argon2 time or user ids.

Login: input checks -> attempt limit -> user lookup -> argon2 verify -> token. The limit
counts every attempt per client IP and per username in one Redis script *before* the password
is checked, so parallel guesses cannot slip past it; a successful login then gives its attempt
back to the address and clears the username's counter, so in effect only failures count. With
Redis unreachable, login answers ``503``: the limiter never fails open. An unknown username
is verified against a dummy hash, so both kinds of failure cost the same time.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError, PyMongoError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common.ids import AllocatorError, AllocatorUnavailable, IdAllocatorClient
from crypto_mine.common.mongo import primary
from crypto_mine.common.names import Collections, Keys

from .auth import COOKIE, issue_token
from .clientip import client_ip
from .errors import ApiError, JSONResponse
from .settings import ApiSettings

log = logging.getLogger(__name__)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# argon2 needs 64 MiB and a core for ~0.1 s per hash: bound how many run at once.
HASH_THREADS = max(2, os.cpu_count() or 2)

# KEYS: the attempt counters (per IP, per username); ARGV: max attempts, window in ms.
# Returns {0, 0} when the attempt is counted, else {blocking key's index, ms until it frees}.
ATTEMPT_SCRIPT = """
local limit = tonumber(ARGV[1])
local blocked, wait = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[2])
      ttl = tonumber(ARGV[2])
    end
    if ttl > wait then
      blocked, wait = i, ttl
    end
  end
end
if blocked > 0 then
  return {blocked, wait}
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return {0, 0}
"""

# KEYS[1]: the IP's counter, which gets the successful attempt back; KEYS[2]: the username's.
FORGIVE_SCRIPT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
redis.call('DEL', KEYS[2])
return 0
"""

LOGIN_SCOPES = ("ip", "username")
REGISTER_SCOPES = ("ip",)


def invalid(detail: str) -> ApiError:
    return ApiError(400, "invalid_body", detail)


async def read_credentials(request: Request) -> tuple[str, str]:
    """``(username, password)`` of a body ``{"username": ..., "password": ...}``, checked."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object with 'username' and 'password'.")
    unknown = sorted(set(body) - {"username", "password"})
    if unknown:
        raise invalid(f"Unknown field(s): {', '.join(unknown)}.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise invalid("'username' must be a string of 3 to 32 characters: A-Z a-z 0-9 _ . -")
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid(
            f"'password' must be a string of {PASSWORD_MIN} to {PASSWORD_MAX} characters."
        )
    return username, password


@functools.cache
def dummy_hash() -> str:
    """What an unknown username's password is checked against: the same work as a real one."""
    return str(PasswordHasher().hash("not the password of anyone"))


def username_key(username: str) -> str:
    """The unique form of a username: ``Alice`` and ``alice`` are one account."""
    return username.lower()


class AccountEndpoints:
    """Sign-up and login; both answer ``{"userId", "username", "token"}`` and set the cookie."""

    def __init__(
        self,
        settings: ApiSettings,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        allocator: IdAllocatorClient,
    ) -> None:
        self.settings = settings
        self.users = database[Collections.users]
        self.allocator = allocator
        self.attempt = redis.register_script(ATTEMPT_SCRIPT)
        self.forgive = redis.register_script(FORGIVE_SCRIPT)
        self.hasher = PasswordHasher()
        self.hash_limiter = anyio.CapacityLimiter(HASH_THREADS)
        self._indexed = False

    def _issuing(self) -> None:
        """Accounts sign their users in with HS256 tokens; an RS256-only api issues none."""
        if "HS256" not in self.settings.jwt_algorithms:
            raise ApiError(
                501,
                "accounts_disabled",
                "This api verifies tokens of an identity provider (JWT_ALGORITHMS has no HS256) "
                "and issues none: sign up and sign in there.",
            )

    async def register(self, request: Request) -> Response:
        self._issuing()
        username, password = await read_credentials(request)
        key = username_key(username)
        ip = client_ip(request, self.settings.trusted_proxies)
        await self._count_attempt(
            [Keys.register_attempts(ip)],
            REGISTER_SCOPES,
            self.settings.register_max_attempts,
            self.settings.register_window_seconds,
            "sign-up",
        )
        await self._ensure_index()
        if await self.users.find_one({"usernameKey": key}, {"_id": 1}) is not None:
            raise taken(username)
        password_hash = await anyio.to_thread.run_sync(
            self.hasher.hash, password, limiter=self.hash_limiter
        )
        user_id = await self._new_user_id()
        user = {
            "_id": user_id,
            "username": username,
            "usernameKey": key,
            "passwordHash": password_hash,
            "createdAt": datetime.now(UTC),
        }
        if not await self._insert(user):
            raise taken(username)
        log.info("user registered", extra={"userId": user_id})
        return self._signed_in(user_id, username, 201)

    async def login(self, request: Request) -> Response:
        self._issuing()
        username, password = await read_credentials(request)
        key = username_key(username)
        ip = client_ip(request, self.settings.trusted_proxies)
        counters = [Keys.login_attempts("ip", ip), Keys.login_attempts("username", key)]
        await self._count_attempt(
            counters,
            LOGIN_SCOPES,
            self.settings.login_max_attempts,
            self.settings.login_window_seconds,
            "login",
        )
        user = await self.users.find_one({"usernameKey": key})
        if user is not None:
            stored = str(user["passwordHash"])
        else:
            stored = await anyio.to_thread.run_sync(dummy_hash, limiter=self.hash_limiter)
        if not await self._verify(stored, password) or user is None:
            log.info("login failed", extra={"username": key, "ip": ip})
            raise ApiError(401, "invalid_credentials", "The username or password is wrong.")
        user_id = str(user["_id"])
        try:
            await self.forgive(keys=counters)
        except RedisError as error:  # the attempt stays counted; the login still succeeds
            log.warning("login counters not reset: %s", error)
        await self._rehash_if_needed(user_id, stored, password)
        return self._signed_in(user_id, str(user["username"]), 200)

    async def _ensure_index(self) -> None:
        if self._indexed:
            return
        try:
            await self._create_index()
        except AutoReconnect:
            await self._create_index()
        self._indexed = True

    async def _create_index(self) -> None:
        await self.users.create_index("usernameKey", unique=True, name="usernameKey_unique")

    async def _insert(self, user: dict[str, Any]) -> bool:
        """Insert a new user; ``False`` when the username belongs to someone else."""
        try:
            await self.users.insert_one(user)
            return True
        except DuplicateKeyError:
            return False
        except AutoReconnect as error:
            log.warning("user insert retried: %s", error)
        try:
            await self.users.insert_one(user)
        except DuplicateKeyError:
            mine = {"_id": user["_id"], "usernameKey": user["usernameKey"]}
            return await primary(self.users).find_one(mine, {"_id": 1}) is not None
        return True

    async def _new_user_id(self) -> str:
        try:
            [user_id] = await self.allocator.allocate(1)
        except AllocatorUnavailable as error:
            log.warning("id-allocator unavailable: %s", error)
            retry_after = max(1, math.ceil(error.retry_after or 1))
            raise ApiError(
                503,
                "id_allocator_unavailable",
                "No user id could be obtained; no account was created. Retry later.",
                {"Retry-After": str(retry_after)},
            ) from None
        except AllocatorError as error:
            log.error("id-allocator answered unusably: %s", error)
            raise ApiError(
                503,
                "id_allocator_unavailable",
                "No user id could be obtained; no account was created. Retry later.",
                {"Retry-After": "1"},
            ) from None
        return str(user_id)

    async def _count_attempt(
        self, counters: list[str], scopes: tuple[str, ...], limit: int, window: int, what: str
    ) -> None:
        """Count one attempt on every counter, or raise ``429`` naming the exhausted one."""
        blocked, wait_ms = await self.attempt(keys=counters, args=[limit, window * 1000])
        if int(blocked):
            scope = scopes[int(blocked) - 1]
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise ApiError(
                429,
                "too_many_attempts",
                f"Too many {what} attempts for this {scope}; retry after {retry_after} s.",
                {"Retry-After": str(retry_after)},
                limit=scope,
            )

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(
                await anyio.to_thread.run_sync(
                    self.hasher.verify, stored, password, limiter=self.hash_limiter
                )
            )
        except (VerificationError, InvalidHashError):
            return False

    async def _rehash_if_needed(self, user_id: str, stored: str, password: str) -> None:
        """Hashes made with older argon2 parameters are replaced at the next login."""
        if not self.hasher.check_needs_rehash(stored):
            return
        fresh = await anyio.to_thread.run_sync(
            self.hasher.hash, password, limiter=self.hash_limiter
        )
        try:
            await self.users.update_one({"_id": user_id}, {"$set": {"passwordHash": fresh}})
        except PyMongoError as error:
            log.warning("password hash of %s not upgraded: %s", user_id, error)

    def _signed_in(self, user_id: str, username: str, status: int) -> Response:
        token = issue_token(self.settings, user_id)
        response = JSONResponse(
            {"userId": user_id, "username": username, "token": token},
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )
        response.set_cookie(
            COOKIE,
            token,
            max_age=self.settings.jwt_ttl_seconds,
            path="/",
            secure=self.settings.auth_cookie_secure,
            httponly=True,
            samesite="lax",
        )
        return response


def taken(username: str) -> ApiError:
    return ApiError(409, "username_taken", f"The username {username!r} is already taken.")
