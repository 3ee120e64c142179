"""ClickHotPath takes exactly the requests Starlette's router would give the click route.

The hot path decides with ``starlette._utils.get_route_path``, the path the router matches
routes against (the scope's path without its ``root_path``): these cases pin that the two
agree, behind a proxy that mounts the api under a prefix too.
"""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from crypto_mine.api.http.hot_path import ClickHotPath
from crypto_mine.api.http.observability import CLICK_ROUTE, Performance

pytestmark = pytest.mark.anyio


async def hot_endpoint(_: Request) -> Response:
    return Response(status_code=201)


async def router_app(scope: Scope, receive: Receive, send: Send) -> None:
    await Response(status_code=299)(scope, receive, send)


async def nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    ("method", "root_path", "path", "clicks"),
    [
        ("POST", "", "/api/mining/click", True),
        ("POST", "/mine", "/mine/api/mining/click", True),
        ("POST", "/mine", "/api/mining/click", True),  # a path that does not carry the prefix
        ("POST", "/api", "/api/mining/click", False),  # the route /mining/click under /api
        ("POST", "/mine", "/mineapi/mining/click", False),
        ("POST", "/api/mining/click", "/api/mining/click", False),
        ("POST", "", "/api/mining/click/", False),
        ("POST", "", "/api/mining/clicks", False),
        ("GET", "", "/api/mining/click", False),  # the router answers it (405)
    ],
)
async def test_the_hot_path_takes_what_the_router_routes_to_the_click_endpoint(
    method: str, root_path: str, path: str, clicks: bool
) -> None:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }
    match, _ = Route(CLICK_ROUTE, hot_endpoint, methods=["POST"]).matches(dict(scope))
    assert (match is Match.FULL) is clicks
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    hot = ClickHotPath(router_app, hot_endpoint, Performance(), max_body_bytes=1024)
    await hot(scope, nothing, send)
    assert sent[0]["status"] == (201 if clicks else 299)
