"""The device cookie: valid only for its username, unaltered and unexpired."""

from __future__ import annotations

import time

from starlette.requests import Request

from crypto_mine.api.routes.devices import COOKIE, DeviceCookies

SECRET = "a-jwt-secret-that-is-long-enough-0123456789"


def request_with(value: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", f"{COOKIE}={value}".encode())]})


def test_a_cookie_proves_its_own_username_only() -> None:
    devices = DeviceCookies(SECRET, 3600, secure=True)
    value = devices.value("alice")
    assert devices.trusted(request_with(value), "alice")
    assert not devices.trusted(request_with(value), "bob")
    assert not devices.trusted(request_with(devices.value("bob")), "alice")


def test_altered_foreign_and_old_cookies_prove_nothing() -> None:
    devices = DeviceCookies(SECRET, 3600, secure=True)
    name, issued, mac = devices.value("alice").split(".")
    bob = devices.value("bob").split(".")[0]
    for forged in [
        f"{bob}.{issued}.{mac}",  # another name under alice's signature
        f"{name}.{int(issued) + 100}.{mac}",  # a later time
        f"{name}.{issued}.{mac[:-2]}AA",
        f"{name}.{issued}",
        "",
        "...",
        DeviceCookies("another-secret-that-is-long-enough-0123", 3600, True).value("alice"),
        devices.value("alice", now=time.time() - 3601),  # expired
    ]:
        assert not devices.trusted(request_with(forged), "alice"), forged
    assert devices.trusted(request_with(devices.value("alice", now=time.time() - 3500)), "alice")
