"""The operator's settings from its environment: names, targets, and the leader election."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto_mine.common.settings import Env, SettingsError
from crypto_mine.operator.leader import Election
from crypto_mine.operator.settings import OperatorSettings, _election


def test_settings_from_environment() -> None:
    settings = OperatorSettings.from_env(
        Env(
            {
                "WATCH_NAMESPACE": "a, b",
                "METRICS_PORT": "9",
                "SCALE_TARGETS": "w1,w2 ",
                "LEADER_ELECTION": "false",
            }
        )
    )
    assert settings.namespaces == ("a", "b")
    assert settings.metrics_port == 9
    assert settings.scale_targets == ("w1", "w2")
    assert settings.election is None
    assert OperatorSettings.from_env(Env({"LEADER_ELECTION": "false"})).namespaces == ()
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        OperatorSettings.from_env(Env({"METRICS_PORT": "http", "LEADER_ELECTION": "false"}))


def test_election_is_on_by_default_with_client_gos_timings() -> None:
    settings = OperatorSettings.from_env(Env({"LEASE_NAMESPACE": "ops", "POD_NAME": "op-7f9"}))
    election = settings.election
    assert election is not None
    assert (election.namespace, election.name) == ("ops", "crypto-mine-operator")
    assert (election.duration, election.renew_deadline, election.retry_period) == (15, 10, 2)
    assert election.identity.startswith("op-7f9_")
    # Each process is a new candidate, even in the same pod.
    again = OperatorSettings.from_env(Env({"LEASE_NAMESPACE": "ops", "POD_NAME": "op-7f9"}))
    assert again.election is not None
    assert again.election.identity != election.identity


def test_election_namespace_from_the_pod(tmp_path: Path) -> None:
    assert _election(Env({"POD_NAMESPACE": "from-env"})).namespace == "from-env"
    file = tmp_path / "namespace"
    file.write_text("from-file\n")
    assert _election(Env({}), namespace_file=file).namespace == "from-file"
    with pytest.raises(SettingsError, match="LEASE_NAMESPACE is missing"):
        _election(Env({}), namespace_file=tmp_path / "absent")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEASE_DURATION": "10", "LEASE_RENEW_DEADLINE": "10"}, "LEASE_DURATION > LEASE_RENEW"),
        ({"LEASE_RETRY_PERIOD": "12"}, "LEASE_RENEW_DEADLINE > LEASE_RETRY_PERIOD"),
        ({"LEASE_DURATION": "soon"}, "LEASE_DURATION must be a number"),
        ({"LEADER_ELECTION": "maybe"}, "LEADER_ELECTION must be true or false"),
    ],
)
def test_bad_election_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        OperatorSettings.from_env(Env({"LEASE_NAMESPACE": "ops", **env}))


def test_election_timings_must_leave_a_gap() -> None:
    with pytest.raises(ValueError, match="LEASE_DURATION > LEASE_RENEW_DEADLINE"):
        Election("ns", "lease", "me", duration=5, renew_deadline=6)
