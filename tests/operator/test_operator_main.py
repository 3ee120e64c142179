"""The entry point: settings errors stop it before kopf starts; kopf's log records stay small."""

from __future__ import annotations

import logging
import subprocess
import sys

from crypto_mine.operator.__main__ import KopfRecordFilter


def test_bad_settings_stop_start_up_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crypto_mine.operator"],
        env={"METRICS_PORT": "ninety"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "METRICS_PORT must be an integer, got 'ninety'" in result.stderr


def test_kopf_records_keep_the_object_and_drop_the_settings() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "New size: 5",
            "settings": object(),
            "k8s_skip": False,
            "k8s_ref": {"kind": "QueueAutoscaler", "namespace": "ns", "name": "worker"},
        }
    )
    assert KopfRecordFilter().filter(record)
    assert not hasattr(record, "settings")
    assert not hasattr(record, "k8s_skip")
    assert record.__dict__["object"] == "QueueAutoscaler ns/worker"
