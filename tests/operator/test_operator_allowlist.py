"""The allow-list of metric URLs: same scheme, host and port; a path prefix at a ``/``."""

from __future__ import annotations

import pytest

from crypto_mine.common.settings import Env, SettingsError
from crypto_mine.operator.allowlist import AllowList, AllowListError
from crypto_mine.operator.settings import OperatorSettings

LIST = AllowList.of(
    ["http://prometheus-operated.monitoring:9090", "https://thanos.example/query/"],
    own=["redis://:pw@redis:6379/0", None],
)


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus-operated.monitoring:9090",
        "http://prometheus-operated.monitoring:9090/",
        "http://PROMETHEUS-OPERATED.monitoring:9090/prometheus",
        "https://thanos.example:443/query",
        "https://thanos.example/query/tenant-a",
        "redis://redis:6379/0",
        "redis://:other@redis/0",
    ],
)
def test_admits(url: str) -> None:
    assert LIST.admits(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus-operated.monitoring:9091",  # another port
        "https://prometheus-operated.monitoring:9090",  # another scheme
        "http://prometheus-operated.monitoring.evil:9090",  # another host
        "http://prometheus-operated.monitoring:9090@evil:9090",  # the host is evil
        "http://evil/?x=http://prometheus-operated.monitoring:9090",
        "https://thanos.example/query-admin",  # prefix without a / boundary
        "https://thanos.example/",  # above the allowed path
        "https://thanos.example/query/../admin",  # dot segments
        "https://thanos.example/query/%2e%2e/admin",  # escapes
        "https://thanos.example/query?x=1",
        "http://prometheus-operated.monitoring:9090#x",
        "redis://redis:6379/1",  # the operator's own Redis, another database
        "http://169.254.169.254/latest/meta-data/",
        "http://prometheus-operated.monitoring:bad/",
        "file:///etc/passwd",
        "",
    ],
)
def test_refuses(url: str) -> None:
    assert not LIST.admits(url)


def test_an_empty_list_admits_nothing() -> None:
    assert not AllowList().admits("http://prometheus:9090")


@pytest.mark.parametrize(
    "entry", ["prometheus:9090", "ftp://host", "http://u:p@host", "http://h/?q", "http://h:x"]
)
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(AllowListError):
        AllowList.of([entry])


def test_settings_build_the_list_from_the_environment() -> None:
    settings = OperatorSettings.from_env(
        Env(
            {
                "METRIC_URL_ALLOWLIST": " http://a:9090 , https://b/prom ",
                "PROMETHEUS_URL": "http://prometheus-operated:9090",
                "REDIS_URL": "unix:///run/redis.sock",  # cannot be named in a spec: not listed
                "LEADER_ELECTION": "false",
            }
        )
    )
    assert settings.metric_urls.admits("http://a:9090/")
    assert settings.metric_urls.admits("https://b/prom/x")
    assert settings.metric_urls.admits("http://prometheus-operated:9090")
    assert not settings.metric_urls.admits("http://c:9090")
    with pytest.raises(SettingsError, match="METRIC_URL_ALLOWLIST"):
        OperatorSettings.from_env(
            Env({"METRIC_URL_ALLOWLIST": "http://user:secret@a:9090", "LEADER_ELECTION": "0"})
        )
