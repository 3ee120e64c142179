"""``POST /api/auth/register`` and ``POST /api/auth/login``: accounts with argon2 passwords.

Sign-up: input checks -> attempt limit -> username free? -> argon2 hash (in a thread) -> user
id from the id-allocator -> insert into ``users``, whose unique index on the lowercased username
settles concurrent sign-ups -> token. Nothing is written before the id-allocator answered.
A pooled MongoDB connection that died with a restarted server fails the first write sent on it;
the index creation and the insert are tried once more on a fresh connection, and a retried
insert that meets its own first attempt (same id, same username) counts as done.

Sign-up attempts are limited per client IP before any work (``attempt_limits.py``). The most
common passwords, and the username as a password, are refused (``passwords.py``).

Login: input checks -> attempt limits (``attempt_limits.py``: per username and client, per
client, and delays per username that spare the account's own devices) -> user lookup ->
argon2 verify -> token and device cookie. With Redis unreachable, login answers ``503``: the
limits never fail open. An unknown username is verified against a dummy hash, so both kinds of
failure cost the same time.
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
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError, PyMongoError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from crypto_mine.common.ids import AllocatorError, AllocatorUnavailable, IdAllocatorClient
from crypto_mine.common.mongo import primary
from crypto_mine.common.names import Collections

from ..admission.attempt_limits import AttemptLimiter, AttemptLimits
from ..http import jsonbody
from ..http.auth import COOKIE, issue_token
from ..http.clientip import client_ip
from ..http.errors import ApiError, JSONResponse
from ..settings import ApiSettings
from .devices import DeviceCookies
from .openapi_parts import UNSUPPORTED, Paths, error_answer, json_answer, ref
from .passwords import check_new_password, common_passwords

log = logging.getLogger(__name__)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# argon2 needs 64 MiB and a core for ~0.1 s per hash: bound how many run at once.
HASH_THREADS = max(2, os.cpu_count() or 2)


def invalid(detail: str) -> ApiError:
    return ApiError(400, "invalid_body", detail)


async def read_credentials(request: Request) -> tuple[str, str]:
    """``(username, password)`` of a body ``{"username": ..., "password": ...}``, checked."""
    jsonbody.require_json(request.headers.get("content-type"))
    body = jsonbody.parse(await request.body())
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
        self.limiter = AttemptLimiter(
            redis,
            AttemptLimits(
                login_max_failures=settings.accounts.login_max_attempts,
                login_ip_max_attempts=settings.accounts.login_ip_max_attempts,
                login_window_seconds=settings.accounts.login_window_seconds,
                login_max_delay_seconds=settings.accounts.login_delay_max_seconds,
                register_max_attempts=settings.accounts.register_max_attempts,
                register_window_seconds=settings.accounts.register_window_seconds,
            ),
        )
        self.devices = DeviceCookies(
            settings.auth.jwt_secret,
            settings.accounts.login_device_ttl_seconds,
            settings.auth.cookie_secure,
        )
        common_passwords()  # read the list now, not during the first sign-up
        self.hasher = PasswordHasher()
        self.hash_limiter = anyio.CapacityLimiter(HASH_THREADS)
        self._indexed = False

    def _issuing(self) -> None:
        """Accounts sign their users in with HS256 tokens; an RS256-only api issues none."""
        if "HS256" not in self.settings.auth.jwt_algorithms:
            raise ApiError(
                501,
                "accounts_disabled",
                "This api verifies tokens of an identity provider (JWT_ALGORITHMS has no HS256) "
                "and issues none: sign up and sign in there.",
            )

    async def register(self, request: Request) -> Response:
        self._issuing()
        username, password = await read_credentials(request)
        check_new_password(username, password)
        key = username_key(username)
        ip = client_ip(request, self.settings.http.trusted_proxies)
        await self.limiter.sign_up(ip)
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
        return self._signed_in(user_id, username, 201, key)

    async def login(self, request: Request) -> Response:
        self._issuing()
        username, password = await read_credentials(request)
        key = username_key(username)
        ip = client_ip(request, self.settings.http.trusted_proxies)
        trusted = self.devices.trusted(request, key)
        await self.limiter.log_in(key, ip, trusted)
        user = await self.users.find_one({"usernameKey": key})
        if user is not None:
            stored = str(user["passwordHash"])
        else:
            stored = await anyio.to_thread.run_sync(dummy_hash, limiter=self.hash_limiter)
        if not await self._verify(stored, password) or user is None:
            log.info("login failed", extra={"username": key, "ip": ip, "trustedDevice": trusted})
            raise ApiError(401, "invalid_credentials", "The username or password is wrong.")
        user_id = str(user["_id"])
        await self.limiter.logged_in(key, ip)
        await self._rehash_if_needed(user_id, stored, password)
        return self._signed_in(user_id, str(user["username"]), 200, key)

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

    def _signed_in(self, user_id: str, username: str, status: int, key: str) -> Response:
        token = issue_token(self.settings, user_id)
        response = JSONResponse(
            {"userId": user_id, "username": username, "token": token},
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )
        response.set_cookie(
            COOKIE,
            token,
            max_age=self.settings.auth.jwt_ttl_seconds,
            path="/",
            secure=self.settings.auth.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        self.devices.set(response, key)
        return response


def taken(username: str) -> ApiError:
    return ApiError(409, "username_taken", f"The username {username!r} is already taken.")


CREDENTIALS = {
    "required": True,
    "content": {"application/json": {"schema": ref("Credentials")}},
}
OPENAPI: Paths = {
    "/api/auth/register": {
        "post": {
            "summary": "Create an account",
            "description": "The user id comes from the id-allocator; the password is "
            "stored as an argon2 hash.",
            "requestBody": CREDENTIALS,
            "responses": {
                "201": json_answer(ref("Session"), "Created and signed in.", ["Set-Cookie"]),
                "400": error_answer(
                    "Invalid JSON, a repeated key, missing or malformed username or "
                    "password, or a password that is among the most common ones "
                    "(`password_too_common`) or is the username (`password_is_username`)."
                ),
                "409": error_answer("The username is taken (case does not matter)."),
                "413": error_answer("Body too large."),
                "415": UNSUPPORTED,
                "429": error_answer(
                    "Too many sign-up attempts from this IP (REGISTER_MAX_ATTEMPTS per "
                    "REGISTER_WINDOW_SECONDS).",
                    ["Retry-After"],
                ),
                "501": error_answer(
                    "This api issues no tokens (JWT_ALGORITHMS without HS256): sign in with "
                    "the identity provider whose JWKS it trusts."
                ),
                "503": error_answer(
                    "The id-allocator, Redis or MongoDB is unreachable; no account was created.",
                    ["Retry-After"],
                ),
            },
        }
    },
    "/api/auth/login": {
        "post": {
            "summary": "Sign in",
            "description": "Per LOGIN_WINDOW_SECONDS: at most LOGIN_MAX_ATTEMPTS failed "
            "logins per username and client IP, and LOGIN_IP_MAX_ATTEMPTS logins of any "
            "outcome per client IP; past LOGIN_MAX_ATTEMPTS failures of a username from "
            "anywhere, attempts from browsers that never signed in to it (no `login-device` "
            "cookie) wait a delay that doubles up to LOGIN_DELAY_MAX_SECONDS. A success "
            "clears the username's failures and sets the `login-device` cookie.",
            "requestBody": CREDENTIALS,
            "responses": {
                "200": json_answer(ref("Session"), "Signed in.", ["Set-Cookie"]),
                "400": error_answer(
                    "Invalid JSON, a repeated key, missing or malformed username or password."
                ),
                "401": error_answer(
                    "The username or password is wrong (the same answer for both)."
                ),
                "413": error_answer("Body too large."),
                "415": UNSUPPORTED,
                "429": error_answer(
                    "Too many attempts: `limit` is ip, username_ip or username (a delay of "
                    "seconds).",
                    ["Retry-After"],
                ),
                "501": error_answer(
                    "This api issues no tokens (JWT_ALGORITHMS without HS256): sign in with "
                    "the identity provider whose JWKS it trusts."
                ),
                "503": error_answer(
                    "Redis or MongoDB is unreachable; nothing was checked.", ["Retry-After"]
                ),
            },
        }
    },
}
