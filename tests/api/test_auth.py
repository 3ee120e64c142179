"""JWT authentication: bearer header or cookie; every failure is a JSON 401."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.api import SECRET, Api

pytestmark = pytest.mark.anyio


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def hs256(claims: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def valid_claims(**extra: object) -> dict[str, object]:
    return {"sub": "u1", "exp": int(time.time()) + 60, **extra}


async def post(api: Api, headers: dict[str, str], cookies: dict[str, str] | None = None) -> int:
    api.client.cookies.clear()
    if cookies:
        api.client.cookies.update(cookies)
    response = await api.client.post(
        "/api/mining/click", headers={"Idempotency-Key": "k", **headers}
    )
    if response.status_code == 401:
        assert response.json()["error"] == "unauthorized"
        assert response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return response.status_code


async def test_bearer_and_cookie_are_accepted(api: Api) -> None:
    token = hs256(valid_claims())
    assert await post(api, {"Authorization": f"Bearer {token}"}) == 202
    assert await post(api, {}, {"auth-token": token}) == 200  # same user, same key: replay


def _none_token() -> str:
    return b64({"alg": "none", "typ": "JWT"}) + "." + b64(valid_claims()) + "."


def _rs256_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(valid_claims(), key, algorithm="RS256")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dTE6cGFzcw==",
        "Bearer not-a-jwt",
        "Bearer " + hs256(valid_claims(), secret="another-secret-of-sufficient-length!!"),
        "Bearer " + hs256({"sub": "u1", "exp": int(time.time()) - 10}),
        "Bearer " + hs256({"sub": "u1"}),
        "Bearer " + hs256({"exp": int(time.time()) + 60}),
        "Bearer " + hs256(valid_claims(sub="")),
        "Bearer " + hs256(valid_claims(sub="u1:k")),
        "Bearer " + hs256(valid_claims(sub="u 1")),
        "Bearer " + hs256(valid_claims(sub="u1\n")),
        "Bearer " + hs256(valid_claims(sub="x" * 65)),
        "Bearer " + hs256(valid_claims(sub=12)),
        "Bearer " + _none_token(),
        "Bearer " + _rs256_token(),
    ],
    ids=[
        "missing",
        "empty-bearer",
        "basic",
        "garbage",
        "wrong-key",
        "expired",
        "no-exp",
        "no-sub",
        "empty-sub",
        "colon-sub",
        "space-sub",
        "newline-sub",
        "long-sub",
        "number-sub",
        "alg-none",
        "rs256-not-accepted",
    ],
)
async def test_bad_credentials_are_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert await post(api, headers) == 401


async def test_forged_payload_with_the_original_signature_is_401(api: Api) -> None:
    header, _, signature = hs256(valid_claims()).split(".")
    forged = f"{header}.{b64(valid_claims(sub='admin'))}.{signature}"
    assert await post(api, {"Authorization": f"Bearer {forged}"}) == 401


async def test_cached_token_still_expires(api: Api) -> None:
    expires = time.time() + 3
    bearer = {"Authorization": "Bearer " + hs256({"sub": "u1", "exp": expires})}
    assert await post(api, bearer) == 202
    # Replays of the same click are answered while the (cached) token lives, then never.
    while (status := await post(api, bearer)) == 200:
        assert time.time() < expires + 10, "a cached token outlived its expiry"
        await asyncio.sleep(0.05)
    assert status == 401
    assert time.time() >= expires


@pytest.mark.parametrize("sub", ["42", "auth0|5f1e0b", "a.b_c~d@e+f=g-h", "x" * 64])
async def test_identity_provider_subjects_are_accepted(api: Api, sub: str) -> None:
    token = hs256(valid_claims(sub=sub))
    assert await post(api, {"Authorization": f"Bearer {token}"}) == 202


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("not-a-jwt", "Token is invalid: not a well-formed token."),
        (hs256(valid_claims(), secret="x" * 40), "Token is invalid: the signature does not match."),
        (hs256({"sub": "u1"}), "Token is invalid: a required claim is missing."),
        (hs256({"sub": "u1", "exp": int(time.time()) - 10}), "Token has expired."),
    ],
)
async def test_failures_are_told_in_our_words_not_the_library_s(
    api: Api, token: str, detail: str
) -> None:
    response = await api.client.get(
        "/api/mining/status", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "detail": detail}


AUDIENCE = "crypto-mine-api"
ISSUER = "https://id.crypto-mine.test"


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"aud": AUDIENCE, "iss": ISSUER}, True),
        ({"aud": ["another-api", AUDIENCE], "iss": ISSUER}, True),
        ({"aud": "another-api", "iss": ISSUER}, False),
        ({"aud": ["another-api"], "iss": ISSUER}, False),
        ({"iss": ISSUER}, False),
        ({"aud": AUDIENCE, "iss": "https://evil.test"}, False),
        ({"aud": AUDIENCE, "iss": ISSUER + "/"}, False),
        ({"aud": AUDIENCE}, False),
    ],
    ids=[
        "both-right",
        "audience-in-a-list",
        "other-audience",
        "list-without-ours",
        "no-audience",
        "other-issuer",
        "issuer-with-a-slash",
        "no-issuer",
    ],
)
async def test_audience_and_issuer_are_checked_when_set(
    start_api: Any, claims: dict[str, object], accepted: bool
) -> None:
    api: Api = await start_api(JWT_AUDIENCE=AUDIENCE, JWT_ISSUER=ISSUER)
    status = await post(api, {"Authorization": "Bearer " + hs256(valid_claims(**claims))})
    assert status == (202 if accepted else 401)


async def test_tokens_the_api_issues_carry_its_audience_and_issuer(start_api: Any) -> None:
    api: Api = await start_api(JWT_AUDIENCE=AUDIENCE, JWT_ISSUER=ISSUER)
    assert await post(api, api.auth("u7")) == 202
    claims = jwt.decode(
        api.auth("u7")["Authorization"].split()[1],
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("u7", AUDIENCE, ISSUER)
    other: Api = await start_api(JWT_AUDIENCE="another-api", JWT_ISSUER=ISSUER)
    assert await post(other, api.auth("u7")) == 401, "a token for another audience"
