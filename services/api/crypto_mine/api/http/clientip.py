"""The client's IP: the peer, or an ``X-Forwarded-For`` hop added by a trusted proxy."""

from __future__ import annotations

import ipaddress

from starlette.requests import HTTPConnection


def client_ip(request: HTTPConnection, trusted_proxies: int) -> str:
    """With N trusted proxies in front, the client is the N-th address from the right.

    Hops left of it were written by the client and prove nothing; with no trusted proxy, the
    header is ignored.
    """
    peer = request.client.host if request.client else "unknown"
    if trusted_proxies == 0:
        return peer
    hops = [
        hop.strip()
        for value in request.headers.getlist("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]
    if len(hops) < trusted_proxies:
        return peer
    candidate = hops[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer
