"""Redis key names: one name per (user, key) pair, whatever the user id holds."""

from __future__ import annotations

import itertools

from crypto_mine.common.names import KEY_TAG, Keys, key_part

USERS = ["1", "a", "a:b", "a:b:c", "a%3Ab", "b", "b:c", "{x}", "", "é", "a b"]
IDEMPOTENCY_KEYS = ["c", "b:c", "c:d", ":", "", "%3A"]


def test_no_two_user_and_key_pairs_share_a_click_record() -> None:
    pairs = list(itertools.product(USERS, IDEMPOTENCY_KEYS))
    names = {Keys.click(user, key) for user, key in pairs}
    assert len(names) == len(pairs)
    # The collision that plain joining with ":" allowed.
    assert Keys.click("a:b", "c") != Keys.click("a", "b:c")


def test_user_keys_are_distinct_and_keep_the_hash_tag() -> None:
    for build in (Keys.user_bucket, Keys.user_status, Keys.events, Keys.event_leases):
        names = [build(user) for user in USERS]
        assert len(set(names)) == len(USERS)
        for name in names:
            assert name.startswith(KEY_TAG + ":")
            assert name.count("{") == 1  # no second hash tag a cluster could pick instead


def test_allocator_ids_keep_their_names() -> None:
    # Records written before the encoding existed are found again: ids are digits.
    assert Keys.click("1234", "k:1") == f"{KEY_TAG}:click:1234:k:1"
    assert Keys.user_bucket("abc123") == f"{KEY_TAG}:rl:user:abc123"
    assert key_part("a:b") == "a%3Ab"
    assert key_part("a%3Ab") == "a%253Ab"
