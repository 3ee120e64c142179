"""Allocator settings from the environment: defaults, and bad values naming their variable."""

from __future__ import annotations

import os
import subprocess

import pytest

from crypto_mine.allocator.settings import AllocatorSettings
from crypto_mine.common.settings import Env, SettingsError
from devstack.servers import BIN

TOKEN = {"ID_ALLOCATOR_TOKEN": "t" * 32}


def test_defaults() -> None:
    settings = AllocatorSettings.from_env(Env(TOKEN))
    assert settings.mode == "segment"
    assert settings.port == 8081
    assert settings.metrics_port == 9101
    assert settings.token not in repr(settings)
    assert settings.counter_name == "user_id"
    assert settings.start == 1
    assert (settings.segments.initial, settings.segments.minimum) == (200, 100)
    assert settings.segments.maximum == 10_000
    assert settings.retry.retries == 3
    assert settings.retry.base_seconds == 0.1
    assert settings.retry.deadline == 4.0


def test_values_are_read() -> None:
    settings = AllocatorSettings.from_env(
        Env(
            {
                "ID_ALLOCATOR_MODE": "strict",
                "ID_SEGMENT_SIZE": "50",
                "ID_PREFETCH_THRESHOLD": "0.25",
                "ID_START": "100000",
                "ID_COUNTER_NAME": "players",
                "LOG_LEVEL": "debug",
                "PORT": "9000",
                "MONGODB_URI": "mongodb://db:27017",
                "ID_REQUEST_DEADLINE_MS": "2500",
                "ID_METRICS_PORT": "9200",
                **TOKEN,
            }
        )
    )
    assert settings.mode == "strict"
    # A smaller initial size lowers the default minimum with it.
    assert (settings.segments.initial, settings.segments.minimum) == (50, 50)
    assert settings.segments.threshold == 0.25
    assert settings.start == 100_000
    assert settings.counter_name == "players"
    assert settings.log_level == "DEBUG"
    assert settings.port == 9000
    assert settings.mongo.uri == "mongodb://db:27017"
    assert settings.retry.deadline == 2.5
    assert settings.metrics_port == 9200


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"ID_ALLOCATOR_MODE": "fast"}, "ID_ALLOCATOR_MODE"),
        ({"ID_SEGMENT_SIZE": "abc"}, "ID_SEGMENT_SIZE"),
        ({"ID_SEGMENT_SIZE": "0"}, "ID_SEGMENT_SIZE"),
        ({"ID_SEGMENT_MIN": "300"}, "ID_SEGMENT_MIN"),
        ({"ID_SEGMENT_MAX": "150"}, "ID_SEGMENT_MAX"),
        ({"ID_PREFETCH_THRESHOLD": "2"}, "ID_PREFETCH_THRESHOLD"),
        ({"ID_START": "-1"}, "ID_START"),
        ({"ID_SEGMENT_ADAPTIVE": "maybe"}, "ID_SEGMENT_ADAPTIVE"),
        ({"ID_RETRIES": "many"}, "ID_RETRIES"),
        ({"ID_REQUEST_DEADLINE_MS": "0"}, "ID_REQUEST_DEADLINE_MS"),
        ({"PORT": "0"}, "PORT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"DB_MAX_POOL_SIZE": "0"}, "DB_MAX_POOL_SIZE"),
        ({"ID_METRICS_PORT": "70000"}, "ID_METRICS_PORT"),
        ({"ID_ALLOCATOR_TOKEN": ""}, "ID_ALLOCATOR_TOKEN"),
        ({"ID_ALLOCATOR_TOKEN": "short"}, "ID_ALLOCATOR_TOKEN"),
    ],
)
def test_bad_values_name_their_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        AllocatorSettings.from_env(Env({**TOKEN, **environ}))


def test_service_refuses_to_start_with_bad_settings() -> None:
    env = {**os.environ, "ID_ALLOCATOR_MODE": "fast"}
    done = subprocess.run(
        [str(BIN / "crypto-mine-id-allocator")],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert b"ID_ALLOCATOR_MODE" in done.stderr
    assert b"Traceback" not in done.stderr
