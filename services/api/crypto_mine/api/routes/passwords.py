"""Passwords sign-up refuses (ASVS 2.1.7): the most common ones, and the username itself.

The list ships with the api (``data/common-passwords.txt``, about 8,400 entries, see the README
beside it): no network call, no third party learns anything. Comparison ignores case, as the
list does.
"""

from __future__ import annotations

import functools
from importlib import resources

from ..http.errors import ApiError

LIST = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    text = (resources.files(__package__) / "data" / LIST).read_text(encoding="utf-8")
    return frozenset(line for line in text.split("\n") if line)


def check_new_password(username: str, password: str) -> None:
    """``400`` for a password attackers try first."""
    folded = password.lower()
    if folded == username.lower():
        raise ApiError(400, "password_is_username", "The password must not be the username.")
    if folded in common_passwords():
        raise ApiError(
            400,
            "password_too_common",
            "This password is among the most common ones, which attackers try first; "
            "choose another.",
        )
