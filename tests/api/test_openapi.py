"""The OpenAPI document: the same bytes as the stored copy, served as built, every path routed.

``openapi.json`` beside this file is the document with the default
MINING_MAX_CLICKS_PER_REQUEST, indented (the keys in the served order). After a change to the
document meant to be seen by clients, write it again:
``.venv/bin/python -m tests.api.test_openapi``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from starlette.routing import Route

from crypto_mine.api.openapi import ORDER, document
from tests.support.api import Api

STORED = Path(__file__).with_name("openapi.json")


def indented(max_clicks_per_request: int = 1000) -> bytes:
    return orjson.dumps(document(max_clicks_per_request), option=orjson.OPT_INDENT_2) + b"\n"


def test_the_document_is_the_stored_one() -> None:
    assert indented() == STORED.read_bytes()


def test_building_it_again_gives_the_same_document() -> None:
    """The routes' operations are copied before the general limit is added to them."""
    assert orjson.dumps(document(7)) == orjson.dumps(document(7))
    assert indented() == STORED.read_bytes()


def test_only_the_click_limit_depends_on_the_settings() -> None:
    small, default = document(7), document()
    assert small["components"]["schemas"]["ClickRequest"]["properties"]["clicks"]["maximum"] == 7
    small["components"]["schemas"]["ClickRequest"] = default["components"]["schemas"][
        "ClickRequest"
    ]
    assert small == default


@pytest.mark.anyio
async def test_the_served_document_is_built_with_the_running_settings(api: Api) -> None:
    served = await api.client.get("/openapi.json")
    assert served.headers["content-type"] == "application/json"
    assert served.content == orjson.dumps(document(api.settings.admission.max_clicks_per_request))


@pytest.mark.anyio
async def test_every_documented_operation_is_routed(api: Api) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    routed: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Route):
            routed.setdefault(route.path, set()).update(route.methods or ())
    paths = document()["paths"]
    assert list(paths) == list(ORDER)
    for path, operations in paths.items():
        assert path in routed, path
        methods = {method.upper() for method in operations}
        assert methods <= routed[path], (path, methods)


if __name__ == "__main__":
    STORED.write_bytes(indented())
