"""Idempotency keys, as functions (the HTTP answers: test_click.py)."""

from __future__ import annotations

import pytest

from crypto_mine.api.admission.idempotency import MAX_LENGTH, parse_key
from crypto_mine.api.http.errors import ApiError


@pytest.mark.parametrize("key", ["a", " ", "~", "k" * MAX_LENGTH, "click-1/2?x=y&z", "a b"])
def test_printable_ascii_keys_up_to_the_limit_are_kept_as_they_are(key: str) -> None:
    assert parse_key(key) == key


@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_key_names_its_source(key: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        parse_key(key, source="The key parameter")
    error = caught.value
    assert (error.status, error.code) == (400, "idempotency_key_missing")
    assert error.detail == "The key parameter is required."


def test_a_key_one_longer_than_the_limit_is_invalid() -> None:
    with pytest.raises(ApiError) as caught:
        parse_key("k" * (MAX_LENGTH + 1))
    assert (caught.value.status, caught.value.code) == (400, "idempotency_key_invalid")
    assert caught.value.detail == "The Idempotency-Key header must be at most 255 characters."


@pytest.mark.parametrize("key", ["tab\there", "new\nline", "del\x7f", "caf\u00e9", "\u00a0"])
def test_control_and_non_ascii_characters_are_invalid(key: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_key(key)
    assert (caught.value.status, caught.value.code) == (400, "idempotency_key_invalid")
    assert caught.value.detail == "The Idempotency-Key header must be printable ASCII characters."
