"""What the routes' OpenAPI operations are made of: answers, references, security.

Each route module documents its own paths in a module-level ``OPENAPI`` (path -> method ->
operation); ``crypto_mine.api.openapi`` assembles them with the shared components.
"""

from __future__ import annotations

from typing import Any

Paths = dict[str, dict[str, dict[str, Any]]]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(
    schema: dict[str, Any], description: str, headers: list[str] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return response


def error_answer(description: str, headers: list[str] | None = None) -> dict[str, Any]:
    return json_answer(ref("Error"), description, headers)


LIMIT_HEADERS = ["RateLimit", "RateLimit-Policy"]
SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
UNAUTHORIZED = error_answer("Missing, invalid or expired token.")
UNSUPPORTED = error_answer("The body is not sent as application/json (no HTML form can sign in).")
UNAVAILABLE = error_answer("A dependency is unreachable; retry later.", ["Retry-After"])
