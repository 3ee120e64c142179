"""Mint a development token: ``crypto-mine-token USER [--ttl SECONDS]`` (uses ``JWT_SECRET``)."""

from __future__ import annotations

import argparse

from .http.auth import issue_token
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crypto-mine-token", description=__doc__)
    parser.add_argument("user", help="user id to put in the token's sub claim")
    parser.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    args = parser.parse_args(argv)
    print(issue_token(ApiSettings.from_env(), args.user, args.ttl))


if __name__ == "__main__":
    main()
