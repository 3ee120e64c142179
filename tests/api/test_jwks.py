"""RS256 tokens verified with keys from a JWKS URL (a real HTTP server in the test)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.api import Api

pytestmark = pytest.mark.anyio

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    public = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def rs256(key: Any, kid: str = "k1", **claims: Any) -> str:
    body = {"sub": "rs-user", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


async def click(api: Api, token: str) -> int:
    response = await api.client.post(
        "/api/mining/click",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"},
    )
    if response.status_code == 401:
        assert response.json()["error"] == "unauthorized"
    return response.status_code


async def test_rs256_from_jwks(start_api: Any, jwks_url: str) -> None:
    api: Api = await start_api(JWT_ALGORITHMS="HS256,RS256", JWT_JWKS_URL=jwks_url)
    assert await click(api, rs256(KEY)) == 202
    assert await click(api, rs256(OTHER)) == 401, "signed by a key the JWKS does not hold"
    assert await click(api, rs256(KEY, kid="unknown")) == 401
    assert await click(api, rs256(KEY, exp=int(time.time()) - 5)) == 401


async def test_rs256_only_api_refuses_hs256(start_api: Any, jwks_url: str) -> None:
    api: Api = await start_api(JWT_ALGORITHMS="RS256", JWT_JWKS_URL=jwks_url)
    assert await click(api, rs256(KEY)) == 202
    hs = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    assert await click(api, hs) == 401


async def test_rs256_only_api_issues_no_tokens(start_api: Any, jwks_url: str) -> None:
    """Sign-up and login would hand out HS256 tokens this api itself refuses: 501, nothing made."""
    api: Api = await start_api(JWT_ALGORITHMS="RS256", JWT_JWKS_URL=jwks_url, JWT_SECRET="")
    credentials = {"username": "rsa-user", "password": "correct horse"}
    for path in ("/api/auth/register", "/api/auth/login"):
        answer = await api.client.post(path, json=credentials)
        assert answer.status_code == 501, answer.text
        assert answer.json()["error"] == "accounts_disabled"
        assert "identity provider" in answer.json()["detail"]
