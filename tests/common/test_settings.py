"""Settings under the original documents' names: accepted as other names of ours, with one
rule when both are set (they must agree, or start-up stops naming both), never ignored."""

from __future__ import annotations

import os
import subprocess

import pytest
import redis
from pymongo import ReadPreference

from crypto_mine.allocator.settings import AllocatorSettings
from crypto_mine.common.mongo import mongo_client, primary
from crypto_mine.common.settings import Env, MongoSettings, RedisSettings, SettingsError
from crypto_mine.operator.settings import OperatorSettings
from crypto_mine.pipeline.ledger import Ledger
from devstack.servers import BIN, MongoServer, RedisServer


def mongo(**environ: str) -> MongoSettings:
    return MongoSettings.from_env(Env(environ))


def redis_url(**environ: str) -> str:
    return RedisSettings.from_env(Env(environ)).url


def test_an_other_name_alone_is_read_like_ours() -> None:
    assert mongo(DB_POOL_SIZE="25").max_pool_size == 25
    assert mongo(DB_MAX_POOL_SIZE="25").max_pool_size == 25
    assert mongo().max_pool_size == 100


def test_both_names_agreeing_after_parsing_is_fine() -> None:
    assert mongo(DB_POOL_SIZE="025", DB_MAX_POOL_SIZE="25").max_pool_size == 25


def test_both_names_disagreeing_stop_start_up_naming_both() -> None:
    with pytest.raises(SettingsError) as raised:
        mongo(DB_POOL_SIZE="10", DB_MAX_POOL_SIZE="100")
    message = str(raised.value)
    assert "DB_MAX_POOL_SIZE='100'" in message
    assert "DB_POOL_SIZE='10'" in message
    assert "Set only DB_MAX_POOL_SIZE" in message


def test_a_bad_value_under_the_other_name_names_that_name() -> None:
    with pytest.raises(SettingsError, match=r"^DB_POOL_SIZE must be an integer"):
        mongo(DB_POOL_SIZE="ten")
    with pytest.raises(SettingsError, match=r"^DB_POOL_SIZE must be at least 1"):
        mongo(DB_POOL_SIZE="0")


def test_the_mongodb_pool_and_read_preference_follow_the_documents() -> None:
    settings = mongo()
    assert (settings.min_pool_size, settings.read_preference) == (10, "primaryPreferred")
    # The documents' DB_POOL_SIZE=10 example, or a smaller pool, keeps the minimum inside it.
    assert mongo(DB_POOL_SIZE="4").min_pool_size == 4
    assert mongo(DB_MIN_POOL_SIZE="0", DB_READ_PREFERENCE="primary").read_preference == "primary"
    with pytest.raises(SettingsError, match="DB_MIN_POOL_SIZE"):
        mongo(DB_MIN_POOL_SIZE="20", DB_MAX_POOL_SIZE="10")
    with pytest.raises(SettingsError, match="DB_READ_PREFERENCE"):
        mongo(DB_READ_PREFERENCE="primary_preferred")


def test_a_queue_limit_is_refused_with_what_to_use_instead() -> None:
    assert mongo(DB_QUEUE_LIMIT="0").max_pool_size == 100
    with pytest.raises(SettingsError, match="DB_QUEUE_LIMIT must be 0") as raised:
        mongo(DB_QUEUE_LIMIT="50")
    assert "waitQueueTimeoutMS in MONGODB_URI" in str(raised.value)


def test_redis_host_and_port_make_the_url() -> None:
    assert redis_url() == "redis://127.0.0.1:6379/0"
    assert redis_url(REDIS_HOST="cache", REDIS_PORT="6380") == "redis://cache:6380/0"
    assert redis_url(REDIS_HOST="cache") == "redis://cache:6379/0"
    assert redis_url(REDIS_PORT="6380") == "redis://127.0.0.1:6380/0"
    assert redis_url(REDIS_HOST="::1", REDIS_PORT="6380") == "redis://[::1]:6380/0"
    with pytest.raises(SettingsError, match="REDIS_PORT must be an integer"):
        redis_url(REDIS_PORT="six")


def test_redis_host_and_port_beside_the_url_must_be_the_urls() -> None:
    url = "redis://:secret@cache:6380/2"
    assert redis_url(REDIS_URL=url, REDIS_HOST="cache", REDIS_PORT="6380") == url
    assert redis_url(REDIS_URL="redis://cache/0", REDIS_PORT="6379") == "redis://cache/0"
    with pytest.raises(SettingsError, match=r"REDIS_PORT=6379 disagrees with REDIS_URL \(6380\)"):
        redis_url(REDIS_URL=url, REDIS_PORT="6379")
    with pytest.raises(SettingsError, match=r"REDIS_HOST=localhost disagrees with REDIS_URL"):
        redis_url(REDIS_URL=url, REDIS_HOST="localhost")


def test_a_kubernetes_service_link_in_redis_port_is_no_setting() -> None:
    link = "tcp://10.96.0.12:6379"
    assert redis_url(REDIS_PORT=link) == "redis://127.0.0.1:6379/0"
    assert redis_url(REDIS_URL="redis://cache:6380/0", REDIS_PORT=link) == "redis://cache:6380/0"


def test_the_operator_reads_redis_the_same_way() -> None:
    alone = {"LEADER_ELECTION": "false"}
    assert OperatorSettings.from_env(Env(alone)).redis_url is None
    settings = OperatorSettings.from_env(
        Env({**alone, "REDIS_HOST": "cache", "REDIS_PORT": "6380"})
    )
    assert settings.redis_url == "redis://cache:6380/0"


def test_the_allocator_takes_the_user_id_guides_retry_names() -> None:
    token = {"ID_ALLOCATOR_TOKEN": "t" * 32}
    settings = AllocatorSettings.from_env(Env({**token, "MAX_RETRIES": "5", "RETRY_DELAY": "250"}))
    assert (settings.retry.retries, settings.retry.base_seconds) == (5, 0.25)
    agreeing = Env({**token, "MAX_RETRIES": "2", "ID_RETRIES": "2"})
    assert AllocatorSettings.from_env(agreeing).retry.retries == 2
    with pytest.raises(SettingsError, match=r"ID_RETRY_BASE_MS='100' and RETRY_DELAY='200'"):
        AllocatorSettings.from_env(Env({**token, "RETRY_DELAY": "200", "ID_RETRY_BASE_MS": "100"}))


def test_redis_host_and_port_reach_a_real_redis(redis_server: RedisServer) -> None:
    url = redis_url(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port))
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        assert client.connection_pool.connection_kwargs["port"] == redis_server.port
    finally:
        client.close()


def test_primary_preferred_reads_and_the_ledger_reads_the_primary(
    mongo_server: MongoServer, mongo_db: str
) -> None:
    settings = mongo(MONGODB_URI=mongo_server.uri, DB_MIN_POOL_SIZE="2")
    client = mongo_client(settings)
    try:
        database = client[mongo_db]
        assert database.read_preference == ReadPreference.PRIMARY_PREFERRED
        database.things.insert_one({"_id": 1, "n": 1})
        assert database.things.find_one({"_id": 1}) == {"_id": 1, "n": 1}
        assert primary(database.things).find_one({"_id": 1}) == {"_id": 1, "n": 1}
        ledger = Ledger(database, reward_per_click=1)
        for collection in (ledger.clicks, ledger.balances, ledger.batches):
            assert collection.read_preference == ReadPreference.PRIMARY
    finally:
        client.close()


@pytest.mark.parametrize(
    ("command", "environ", "named"),
    [
        ("crypto-mine-api", {"DB_POOL_SIZE": "10", "DB_MAX_POOL_SIZE": "20"}, "DB_POOL_SIZE"),
        ("crypto-mine-worker", {"REDIS_URL": "redis://a:1/0", "REDIS_PORT": "2"}, "REDIS_PORT"),
        ("crypto-mine-id-allocator", {"MAX_RETRIES": "1", "ID_RETRIES": "2"}, "MAX_RETRIES"),
        ("crypto-mine-api", {"DB_QUEUE_LIMIT": "100"}, "waitQueueTimeoutMS"),
    ],
)
def test_services_stop_at_start_up_naming_the_variables(
    command: str, environ: dict[str, str], named: str
) -> None:
    env = {**os.environ, "JWT_SECRET": "x" * 32, **environ}
    done = subprocess.run(
        [str(BIN / command)], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert named.encode() in done.stderr
    assert b"bad settings" in done.stderr
    assert b"Traceback" not in done.stderr
