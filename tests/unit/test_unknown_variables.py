"""An ORDERSTREAM_* variable no setting reads is said at start-up, with the closest name."""

from __future__ import annotations

from structlog.testing import capture_logs

from worker.ops.startup import report_unknown_variables
from worker.settings import KCL_STATUS_DIR, SETTINGS


def test_a_typo_is_warned_with_the_setting_it_likely_meant() -> None:
    env = {"ORDERSTREAM_SINK": "sqs", "ORDERSTREAM_SINKS": "log", "PATH": "/usr/bin"}
    with capture_logs() as logs:
        assert report_unknown_variables(env) == ["ORDERSTREAM_SINK"]
    (event,) = logs
    assert event["event"] == "settings.unknown_variable"
    assert event["log_level"] == "warning"
    assert (event["variable"], event["did_you_mean"]) == ("ORDERSTREAM_SINK", "ORDERSTREAM_SINKS")


def test_every_declared_and_internal_variable_is_known() -> None:
    env = {row.env: "x" for row in SETTINGS} | {KCL_STATUS_DIR: "/tmp/status"}
    with capture_logs() as logs:
        assert report_unknown_variables(env) == []
    assert logs == []


def test_a_name_like_no_setting_gets_no_guess() -> None:
    with capture_logs() as logs:
        assert report_unknown_variables({"ORDERSTREAM_ZZZZZZZZZZZZZZZZZZZZZZZ": "1"}) != []
    assert "did_you_mean" not in logs[0]
