"""Sign-up and login: a real id-allocator process, real Redis and MongoDB (nx-27017)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import redis
from argon2 import PasswordHasher
from pymongo import MongoClient

from crypto_mine.api.routes.devices import COOKIE as DEVICE
from crypto_mine.api.routes.passwords import common_passwords
from crypto_mine.common.names import Collections, Keys
from devstack.servers import MongoServer, RedisServer, free_port
from tests.support.allocator import AllocatorProcess
from tests.support.api import SECRET, Api

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse"
WRONG = "wrong password"


@pytest.fixture(scope="module")
def allocator(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AllocatorProcess]:
    folder = tmp_path_factory.mktemp("accounts-allocator")
    service = AllocatorProcess(folder, mongo_server.uri, {"ID_COUNTER_NAME": "accounts-tests"})
    yield service.start().wait_ready()
    service.stop()


@pytest.fixture
def users(mongo_server: MongoServer, mongo_db: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[mongo_db][Collections.users]
    client.close()


@pytest.fixture
async def accounts(start_api: Any, allocator: AllocatorProcess) -> Api:
    return await start_api(ID_ALLOCATOR_URL=allocator.url)  # type: ignore[no-any-return]


async def register(api: Api, username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    return await api.client.post(
        "/api/auth/register", json={"username": username, "password": password}
    )


async def login(
    api: Api, username: str = "alice", password: str = PASSWORD, ip: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return await api.client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


def auth_cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The ``auth-token`` cookie's value and attributes (lowercased names; flags map to "")."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("auth-token=")]
    morsel = SimpleCookie(header)["auth-token"]
    flags = {part.strip().lower() for part in header.split(";")[1:]}
    attributes = {name: value for name, value in morsel.items() if value}
    attributes.update({flag: "" for flag in flags if "=" not in flag})
    return morsel.value, attributes


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def test_register_answers_201_with_a_token_and_a_cookie(accounts: Api, users: Any) -> None:
    response = await register(accounts)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"userId", "username", "token"}
    assert body["username"] == "alice"
    assert body["userId"].isdigit()
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["userId"]
    assert claims["exp"] - claims["iat"] == accounts.settings.auth.jwt_ttl_seconds
    assert response.headers["Cache-Control"] == "no-store"

    value, attributes = auth_cookie(response)
    assert value == body["token"]
    assert {"httponly", "secure"} <= set(attributes)
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert attributes["max-age"] == str(accounts.settings.auth.jwt_ttl_seconds)
    assert users.count_documents({}) == 1


async def test_cookie_is_not_secure_when_turned_off(
    start_api: Any, allocator: AllocatorProcess
) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, AUTH_COOKIE_SECURE="false")
    _, attributes = auth_cookie(await register(api))
    assert "secure" not in attributes
    assert "httponly" in attributes


async def test_password_is_stored_only_as_an_argon2_hash(accounts: Api, users: Any) -> None:
    user_id = (await register(accounts, "Alice", "a secret of mine")).json()["userId"]
    [document] = users.find({})
    assert document["_id"] == user_id
    assert (document["username"], document["usernameKey"]) == ("Alice", "alice")
    assert set(document) == {"_id", "username", "usernameKey", "passwordHash", "createdAt"}
    stored = document["passwordHash"]
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, "a secret of mine")
    assert "a secret of mine" not in repr(document)


async def test_ids_come_from_the_allocator_and_differ(accounts: Api) -> None:
    first = (await register(accounts, "alice")).json()["userId"]
    second = (await register(accounts, "bob")).json()["userId"]
    assert first != second
    assert int(second) > int(first)


async def test_tokens_of_register_and_login_click_as_that_user(accounts: Api) -> None:
    registered = (await register(accounts)).json()
    bearer = {"Authorization": f"Bearer {registered['token']}", "Idempotency-Key": "k1"}
    clicked = await accounts.client.post("/api/mining/click", headers=bearer)
    assert clicked.status_code == 202, clicked.text

    signed_in = (await login(accounts)).json()
    assert signed_in["userId"] == registered["userId"]
    accounts.client.cookies.set("auth-token", signed_in["token"])
    again = await accounts.client.post("/api/mining/click", headers={"Idempotency-Key": "k2"})
    assert again.status_code == 202, again.text
    status = await accounts.client.get("/api/mining/status")
    assert status.json()["userId"] == registered["userId"]


async def test_login_answers_200_whatever_the_case_of_the_username(accounts: Api) -> None:
    registered = (await register(accounts, "Alice")).json()
    response = await login(accounts, "aLiCe")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["userId"], body["username"]) == (registered["userId"], "Alice")
    assert jwt.decode(body["token"], SECRET, algorithms=["HS256"])["sub"] == body["userId"]
    value, attributes = auth_cookie(response)
    assert value == body["token"]
    assert {"httponly", "secure"} <= set(attributes)
    assert response.headers["Cache-Control"] == "no-store"


BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any], str]] = [
    ("empty", b"", "invalid_json"),
    ("not-json", b"{username: alice", "invalid_json"),
    ("array", ["alice", PASSWORD], "invalid_body"),
    ("string", b'"alice"', "invalid_body"),
    ("missing-username", {"password": PASSWORD}, "invalid_body"),
    ("missing-password", {"username": "alice"}, "invalid_body"),
    ("username-number", {"username": 12345, "password": PASSWORD}, "invalid_body"),
    ("username-null", {"username": None, "password": PASSWORD}, "invalid_body"),
    ("password-number", {"username": "alice", "password": 12345678}, "invalid_body"),
    ("password-list", {"username": "alice", "password": [PASSWORD]}, "invalid_body"),
    ("username-too-short", {"username": "al", "password": PASSWORD}, "invalid_body"),
    ("username-too-long", {"username": "a" * 33, "password": PASSWORD}, "invalid_body"),
    ("username-space", {"username": "al ice", "password": PASSWORD}, "invalid_body"),
    ("username-symbol", {"username": "alice!", "password": PASSWORD}, "invalid_body"),
    ("username-non-ascii", {"username": "alicé", "password": PASSWORD}, "invalid_body"),
    ("username-newline", {"username": "alice\n", "password": PASSWORD}, "invalid_body"),
    ("password-too-short", {"username": "alice", "password": "1234567"}, "invalid_body"),
    ("password-too-long", {"username": "alice", "password": "x" * 257}, "invalid_body"),
    ("unknown-field", {"username": "alice", "password": PASSWORD, "admin": True}, "invalid_body"),
    (
        "repeated-username",
        b'{"username": "alice", "username": "bob", "password": "x"}',
        "duplicate_key",
    ),
    (
        "repeated-password",
        b'{"username": "alice", "password": "a", "password": "b"}',
        "duplicate_key",
    ),
]


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login"])
@pytest.mark.parametrize(
    ("body", "code"), [(b, c) for _, b, c in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES]
)
async def test_bad_input_is_400(
    accounts: Api, users: Any, path: str, body: bytes | dict[str, Any], code: str
) -> None:
    if isinstance(body, bytes):
        json_type = {"Content-Type": "application/json"}
        response = await accounts.client.post(path, content=body, headers=json_type)
    else:
        response = await accounts.client.post(path, json=body)
    assert_error(response, 400, code)
    assert users.count_documents({}) == 0


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login"])
@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
async def test_only_json_bodies_are_read_so_no_form_can_sign_in(
    accounts: Api, users: Any, path: str, content_type: str | None
) -> None:
    """A form on another site can post these types without asking; JSON it cannot (CORS)."""
    body = b'{"username": "alice", "password": "correct horse"}'
    headers = {"Content-Type": content_type} if content_type else {}
    response = await accounts.client.post(path, content=body, headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert "set-cookie" not in response.headers
    assert users.count_documents({}) == 0


async def test_json_with_parameters_is_json(accounts: Api) -> None:
    body = b'{"username": "alice", "password": "correct horse"}'
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    response = await accounts.client.post("/api/auth/register", content=body, headers=headers)
    assert response.status_code == 201, response.text


async def test_limits_of_the_rules_are_accepted(accounts: Api) -> None:
    assert (await register(accounts, "a.b", "1234567x")).status_code == 201
    assert (await register(accounts, "Z_-." + "9" * 28, "p" * 256)).status_code == 201
    assert (await login(accounts, "A.B", "1234567x")).status_code == 200


async def test_taken_username_is_409_whatever_its_case(accounts: Api, users: Any) -> None:
    assert (await register(accounts, "alice")).status_code == 201
    assert_error(await register(accounts, "alice", "another password"), 409, "username_taken")
    assert_error(await register(accounts, "ALICE"), 409, "username_taken")
    assert users.count_documents({}) == 1


async def test_concurrent_registrations_of_one_username_make_one_account(
    accounts: Api, users: Any
) -> None:
    names = ["carol", "Carol", "CAROL", "carol", "cArol", "carol", "caroL", "carol"]
    responses = await asyncio.gather(*(register(accounts, name) for name in names))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (len(names) - 1), [r.text for r in responses]
    [document] = users.find({})
    [created] = [r.json() for r in responses if r.status_code == 201]
    assert document["_id"] == created["userId"]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"] == "username_taken"


async def test_wrong_password_and_unknown_user_are_the_same_401(accounts: Api) -> None:
    await register(accounts)
    wrong_password = await login(accounts, "alice", "not the password")
    unknown_user = await login(accounts, "mallory", "not the password")
    assert_error(wrong_password, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_user.json()
    assert unknown_user.status_code == 401
    assert "set-cookie" not in wrong_password.headers


async def test_unknown_user_costs_the_time_of_a_wrong_password(
    start_api: Any, allocator: Any
) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, LOGIN_MAX_ATTEMPTS=100)
    await register(api)
    await login(api, "nobody", "warming up")

    async def cost(username: str) -> float:
        """CPU seconds of this process (all threads) for one failed login: unlike the time it
        takes, this does not grow when other processes keep the machine busy."""
        started = time.process_time()
        response = await login(api, username, "not the password")
        assert response.status_code == 401
        return time.process_time() - started

    known, unknown = [], []
    for _ in range(5):
        known.append(await cost("alice"))
        unknown.append(await cost("mallory"))
    ratio = statistics.median(unknown) / statistics.median(known)
    # Without the dummy check an unknown name costs ~100x less; the band absorbs the rest of
    # the process's work (the event loop, Redis and MongoDB clients) and still catches that.
    assert 0.3 < ratio < 3, f"unknown {unknown} vs known {known}"


def device_cookie(response: httpx.Response) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(DEVICE + "=")]
    morsel = SimpleCookie(header)[DEVICE]
    assert morsel["path"] == "/api/auth/login"
    assert morsel["samesite"].lower() == "strict"
    assert morsel["httponly"]
    return morsel.value


async def guess(api: Api, ip: str, password: str = WRONG, **cookies: str) -> httpx.Response:
    api.client.cookies.clear()
    headers = {"X-Forwarded-For": ip, "Content-Type": "application/json"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    body = orjson.dumps({"username": "alice", "password": password})
    return await api.client.post("/api/auth/login", content=body, headers=headers)


async def behind_a_proxy_with_alice(start_api: Any, allocator: Any, **env: Any) -> tuple[Api, str]:
    """An api behind one trusted proxy, alice signed up; her browser's device cookie."""
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, TRUSTED_PROXY_COUNT=1, **env)
    return api, device_cookie(await register(api))


async def test_guesses_from_many_addresses_slow_the_username_and_never_lock_the_owner_out(
    start_api: Any, allocator: Any
) -> None:
    api, owner = await behind_a_proxy_with_alice(start_api, allocator)
    for n in range(4):
        assert_error(await guess(api, f"192.0.2.{n}"), 401, "invalid_credentials")
    # The fifth and a sixth guess at once, from two more addresses (together, so that no
    # password check of a busy machine comes between them): the later one must wait a second.
    fifth, slowed = await one_of_each(guess(api, "192.0.2.4"), guess(api, "192.0.2.50"))
    assert_error(fifth, 401, "invalid_credentials")
    assert_error(slowed, 429, "too_many_attempts")
    assert (slowed.json()["limit"], slowed.headers["Retry-After"]) == ("username", "1")
    # The owner's browser signed in before: never delayed, whatever strangers try.
    assert (await guess(api, "198.51.100.7", PASSWORD, **{DEVICE: owner})).status_code == 200

    for n in range(5):  # the success cleared the count; strangers start again
        assert_error(await guess(api, f"192.0.2.{n}"), 401, "invalid_credentials")
    await asyncio.sleep(1.05)
    sixth, doubled = await one_of_each(guess(api, "192.0.2.60"), guess(api, "192.0.2.61"))
    assert_error(sixth, 401, "invalid_credentials")  # after its delay
    assert (doubled.status_code, doubled.headers["Retry-After"]) == (429, "2")
    # The owner on a new device waits seconds, not LOGIN_WINDOW_SECONDS.
    await asyncio.sleep(int(doubled.headers["Retry-After"]) + 0.05)
    signed_in = await guess(api, "198.51.100.8", PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    assert device_cookie(signed_in)


async def one_of_each(
    *attempts: Awaitable[httpx.Response],
) -> tuple[httpx.Response, httpx.Response]:
    """The answers of two concurrent attempts: (the one counted, the one held back)."""
    first, second = await asyncio.gather(*attempts)
    return (first, second) if first.status_code != 429 else (second, first)


async def test_the_delay_grows_to_its_cap(
    start_api: Any, allocator: Any, redis_client: Any
) -> None:
    api, _ = await behind_a_proxy_with_alice(start_api, allocator, LOGIN_DELAY_MAX_SECONDS=5)
    for n in range(5):
        await guess(api, f"192.0.2.{n}")
    # As if strangers had kept guessing: twenty failures, the last one just now.
    [key] = redis_client.keys("{mining}:login:username:alice")
    seconds, micros = redis_client.time()
    redis_client.hset(key, mapping={"n": 20, "t": seconds * 1000 + micros // 1000})
    capped = await guess(api, "192.0.2.99")
    assert (capped.status_code, capped.headers["Retry-After"]) == (429, "5")


async def test_failures_per_username_and_client_are_a_hard_limit(
    start_api: Any, allocator: Any
) -> None:
    api, owner = await behind_a_proxy_with_alice(start_api, allocator)
    for _ in range(5):
        assert_error(await guess(api, "203.0.113.9"), 401, "invalid_credentials")
    blocked = await guess(api, "203.0.113.9", PASSWORD, **{DEVICE: owner})
    assert_error(blocked, 429, "too_many_attempts")
    assert blocked.json()["limit"] == "username_ip"
    assert 895 <= int(blocked.headers["Retry-After"]) <= 900
    # Another client, or another username from that client, is not held back by it.
    assert (await guess(api, "203.0.113.10", PASSWORD, **{DEVICE: owner})).status_code == 200
    other = await login(api, "bob", "wrong password", ip="203.0.113.9")
    assert_error(other, 401, "invalid_credentials")


async def test_every_login_of_a_client_counts_successes_included(
    start_api: Any, allocator: Any
) -> None:
    """A client cannot keep argon2 busy by signing in to its own account again and again."""
    api, _ = await behind_a_proxy_with_alice(start_api, allocator, LOGIN_IP_MAX_ATTEMPTS=4)
    for _ in range(3):
        assert (await login(api, ip="203.0.113.7")).status_code == 200
    assert_error(
        await login(api, "other", "wrong password", ip="203.0.113.7"), 401, "invalid_credentials"
    )
    blocked = await login(api, ip="203.0.113.7")
    assert_error(blocked, 429, "too_many_attempts")
    assert blocked.json()["limit"] == "ip"
    assert 895 <= int(blocked.headers["Retry-After"]) <= 900
    assert (await login(api, ip="203.0.113.8")).status_code == 200


async def test_parallel_guesses_cannot_pass_the_limit(accounts: Api) -> None:
    await register(accounts)
    guesses = await asyncio.gather(
        *(login(accounts, "alice", f"guess number {n}") for n in range(12))
    )
    statuses = sorted(response.status_code for response in guesses)
    assert statuses == [401] * 5 + [429] * 7


async def test_the_window_resets_the_limit(
    start_api: Any, allocator: Any, redis_client: redis.Redis
) -> None:
    # Long enough for six argon2 checks on a busy machine (13 s were seen at a load of 20 on
    # 2 CPUs); the first attempt opens the window, and the test waits for what is left of it.
    window = 30
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, LOGIN_WINDOW_SECONDS=window)
    await register(api)
    started = time.monotonic()
    failures = await asyncio.gather(*(login(api, "alice", "wrong password") for _ in range(5)))
    assert [response.status_code for response in failures] == [401] * 5
    blocked = await login(api, "alice", PASSWORD)
    assert time.monotonic() - started < window, "the machine is too slow for this window"
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= window
    # The window ends when the counters expire (the first attempt set their lifetime): wait
    # for what Redis says is left of it, not for a guess of when the first attempt was counted.
    counters = [Keys.login_attempts("ip", "10.0.0.1"), Keys.login_attempts("username", "alice")]
    left = max(redis_client.pttl(key) for key in counters)
    assert 0 < left <= window * 1000
    await asyncio.sleep(left / 1000 + 0.05)
    assert (await login(api, "alice", PASSWORD)).status_code == 200


async def test_allocator_down_is_503_and_creates_nothing(
    start_api: Any, mongo_server: MongoServer, tmp_path: Path, users: Any
) -> None:
    service = AllocatorProcess(tmp_path, mongo_server.uri, {"ID_COUNTER_NAME": "accounts-down"})
    service.start().wait_ready()
    try:
        api: Api = await start_api(ID_ALLOCATOR_URL=service.url, ID_ALLOCATOR_TIMEOUT=1)
        assert (await register(api, "before")).status_code == 201
        service.stop()
        started = time.monotonic()
        response = await register(api, "during")
        assert time.monotonic() - started < 2
        assert_error(response, 503, "id_allocator_unavailable")
        assert response.headers["Retry-After"] == "1"
        assert users.count_documents({"usernameKey": "during"}) == 0
        service.start().wait_ready()
        assert (await register(api, "during")).status_code == 201
    finally:
        service.stop()


async def test_nothing_listening_at_the_allocator_is_503(start_api: Any, users: Any) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=f"http://127.0.0.1:{free_port()}")
    response = await register(api)
    assert_error(response, 503, "id_allocator_unavailable")
    assert "Retry-After" in response.headers
    assert users.count_documents({}) == 0


async def test_redis_down_login_and_register_are_503_never_unlimited(
    start_api: Any, allocator: Any, private_redis: RedisServer, users: Any
) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, REDIS_URL=private_redis.url)
    await register(api)
    private_redis.stop()
    for _ in range(3):
        response = await login(api)  # the right password: still no answer without the limiter
        assert_error(response, 503, "redis_unavailable")
        assert response.headers["Retry-After"] == "1"
        assert "set-cookie" not in response.headers
    assert_error(await register(api, "bob"), 503, "redis_unavailable")
    assert users.count_documents({"usernameKey": "bob"}) == 0
    private_redis.start()
    assert (await login(api)).status_code == 200
    assert (await register(api, "bob")).status_code == 201


async def test_mongodb_down_is_503(start_api: Any, allocator: Any, tmp_path: Path) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    try:
        api: Api = await start_api(
            ID_ALLOCATOR_URL=allocator.url,
            MONGODB_URI=mongo.uri,
            DB_SERVER_SELECTION_TIMEOUT=1500,
        )
        assert (await register(api)).status_code == 201
        mongo.stop()
        assert_error(await register(api, "bob"), 503, "mongodb_unavailable")
        assert_error(await login(api), 503, "mongodb_unavailable")
        mongo.start()
        assert (await login(api)).status_code == 200
    finally:
        mongo.stop()


async def test_sign_up_right_after_a_mongodb_restart_succeeds_once(
    start_api: Any, allocator: Any, tmp_path: Path
) -> None:
    mongo = MongoServer(tmp_path / "mongo").start()
    try:
        api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, MONGODB_URI=mongo.uri)
        assert (await api.client.get("/readyz")).status_code == 200  # a pooled connection
        mongo.kill9()
        ready = await api.client.get("/readyz")
        assert ready.json()["checks"]["mongodb"].startswith("unavailable")
        mongo.start()  # same port and data: the pooled connection is now dead
        assert (await register(api, "carol")).status_code == 201
        assert (await register(api, "dave")).status_code == 201
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
        try:
            stored = client[api.settings.mongo.database][Collections.users]
            assert stored.count_documents({"usernameKey": {"$in": ["carol", "dave"]}}) == 2
        finally:
            client.close()
    finally:
        mongo.stop()


async def test_openapi_documents_both_routes(accounts: Api) -> None:
    paths = (await accounts.client.get("/openapi.json")).json()["paths"]
    register_answers = paths["/api/auth/register"]["post"]["responses"]
    login_answers = paths["/api/auth/login"]["post"]["responses"]
    assert set(register_answers) == {"201", "400", "409", "413", "415", "429", "501", "503"}
    assert set(login_answers) == {"200", "400", "401", "413", "415", "429", "501", "503"}


async def test_register_flood_from_one_ip_is_429_and_creates_nothing(
    start_api: Any, allocator: Any, users: Any
) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, REGISTER_MAX_ATTEMPTS=3)
    flood = await asyncio.gather(*(register(api, f"flood{n}") for n in range(12)))
    statuses = sorted(response.status_code for response in flood)
    assert statuses == [201] * 3 + [429] * 9
    blocked = next(response for response in flood if response.status_code == 429)
    assert_error(blocked, 429, "too_many_attempts")
    assert blocked.json()["limit"] == "ip"
    assert 3595 <= int(blocked.headers["Retry-After"]) <= 3600
    assert users.count_documents({}) == 3
    # Taken usernames count too: probing which names exist is limited the same way.
    assert_error(await register(api, "flood0"), 429, "too_many_attempts")


async def test_register_limit_cannot_be_dodged_with_forwarded_for(
    start_api: Any, allocator: Any
) -> None:
    api: Api = await start_api(ID_ALLOCATOR_URL=allocator.url, REGISTER_MAX_ATTEMPTS=2)
    spoofed = [
        await api.client.post(
            "/api/auth/register",
            json={"username": f"spoof{n}", "password": PASSWORD},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        for n in range(3)
    ]
    assert [response.status_code for response in spoofed] == [201, 201, 429]


async def test_register_limit_is_per_client_behind_a_trusted_proxy(
    start_api: Any, allocator: Any
) -> None:
    api: Api = await start_api(
        ID_ALLOCATOR_URL=allocator.url, REGISTER_MAX_ATTEMPTS=1, TRUSTED_PROXY_COUNT=1
    )

    async def from_ip(username: str, chain: str) -> int:
        response = await api.client.post(
            "/api/auth/register",
            json={"username": username, "password": PASSWORD},
            headers={"X-Forwarded-For": chain},
        )
        return response.status_code

    assert await from_ip("first", "198.51.100.1") == 201
    assert await from_ip("second", "6.6.6.6, 198.51.100.1") == 429  # a client-written hop
    assert await from_ip("third", "198.51.100.2") == 201


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("alice", "password1", "password_too_common"),
        ("alice", "12345678", "password_too_common"),
        ("alice", "PassWord1", "password_too_common"),  # the list ignores case
        ("alice", "iloveyou2", "password_too_common"),
        ("alice_smith", "Alice_Smith", "password_is_username"),
    ],
)
async def test_common_passwords_are_refused_at_sign_up(
    accounts: Api, users: Any, username: str, password: str, code: str
) -> None:
    assert_error(await register(accounts, username, password), 400, code)
    assert users.count_documents({}) == 0


def test_the_bundled_list_is_what_its_readme_says() -> None:
    words = common_passwords()
    assert 8000 < len(words) < 9000
    assert all(len(word) >= 8 and word == word.lower() for word in words)
    assert PASSWORD not in words
