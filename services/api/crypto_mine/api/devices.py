"""The device cookie: proof that this browser signed in to an account before.

After a successful sign-up or login the api sets ``login-device``, an HMAC-signed note of the
account's username and the time, ``HttpOnly``, ``SameSite=Strict``, sent only to the login
path, for ``LOGIN_DEVICE_TTL_SECONDS``. A login that presents it for the username it tries is
exempt from the per-username delays (``attempt_limits.py``), never from the per-client limits.
The key is derived from ``JWT_SECRET``, which accounts need anyway, and never signs tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "login-device"
PATH = "/api/auth/login"
PURPOSE = b"crypto-mine login device cookie v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceCookies:
    def __init__(self, secret: str, ttl_seconds: int, secure: bool) -> None:
        self.key = hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()
        self.ttl = ttl_seconds
        self.secure = secure

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())

    def value(self, username_key: str, now: float | None = None) -> str:
        payload = f"{_b64(username_key.encode())}.{int(now or time.time())}"
        return f"{payload}.{self._mac(payload)}"

    def trusted(self, request: Request, username_key: str) -> bool:
        """Whether the request carries a valid, unexpired device cookie for this username."""
        raw = request.cookies.get(COOKIE, "")
        name, _, rest = raw.partition(".")
        issued, _, mac = rest.partition(".")
        if not (name and issued.isdigit() and mac):
            return False
        if not hmac.compare_digest(mac, self._mac(f"{name}.{issued}")):
            return False
        try:
            signed_for = _unb64(name).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return signed_for == username_key and int(issued) + self.ttl > time.time()

    def set(self, response: Response, username_key: str) -> None:
        response.set_cookie(
            COOKIE,
            self.value(username_key),
            max_age=self.ttl,
            path=PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
