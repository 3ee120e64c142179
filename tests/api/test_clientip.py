"""Client IPs from the peer and trusted ``X-Forwarded-For`` hops, as a function (the limits
they key: test_limits.py)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from crypto_mine.api.http.clientip import client_ip

PEER = "10.0.0.1"


def request(*forwarded: str, peer: str | None = PEER) -> Request:
    return Request(
        {
            "type": "http",
            "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
            "client": (peer, 5000) if peer else None,
        }
    )


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip(request("1.2.3.4"), 0) == PEER


def test_no_peer_is_unknown() -> None:
    assert client_ip(request(peer=None), 0) == "unknown"
    assert client_ip(request(peer=None), 1) == "unknown"


@pytest.mark.parametrize(
    ("trusted", "client"),
    [(1, "5.6.7.8"), (2, "2.2.2.2"), (3, "1.1.1.1"), (4, PEER)],
)
def test_the_nth_hop_from_the_right_is_the_client(trusted: int, client: str) -> None:
    assert client_ip(request("1.1.1.1, 2.2.2.2, 5.6.7.8"), trusted) == client


def test_hops_of_several_header_lines_are_read_in_order() -> None:
    forwarded = request("1.1.1.1", "2.2.2.2, 3.3.3.3")
    assert client_ip(forwarded, 1) == "3.3.3.3"
    assert client_ip(forwarded, 2) == "2.2.2.2"
    assert client_ip(forwarded, 3) == "1.1.1.1"


def test_empty_hops_and_spaces_are_skipped() -> None:
    assert client_ip(request(" 1.1.1.1 ,, 2.2.2.2 , "), 1) == "2.2.2.2"
    assert client_ip(request(" 1.1.1.1 ,, 2.2.2.2 , "), 2) == "1.1.1.1"
    assert client_ip(request(" , "), 1) == PEER


@pytest.mark.parametrize("hop", ["evil}:key", "1.2.3", "300.1.1.1", "unknown"])
def test_a_hop_that_is_no_address_falls_back_to_the_peer(hop: str) -> None:
    assert client_ip(request(f"9.9.9.9, {hop}"), 1) == PEER


def test_addresses_are_normalized() -> None:
    # One client, one bucket: however its proxy spells the address.
    assert client_ip(request("2001:DB8:0:0::1"), 1) == "2001:db8::1"
    assert client_ip(request("2001:db8::1"), 1) == "2001:db8::1"
