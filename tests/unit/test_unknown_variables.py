"""Start-up warnings about the environment: an ORDERSTREAM_* variable no setting reads
(with the closest name), and a sink's target set while the sink is off."""

from __future__ import annotations

from structlog.testing import capture_logs

from worker.ops.startup import report_idle_targets, report_unknown_variables
from worker.settings import KCL_STATUS_DIR, SETTINGS, WorkerSettings


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


def test_a_sinks_target_set_while_the_sink_is_off_is_a_warning() -> None:
    env = {"ORDERSTREAM_WEBHOOK_URL": "https://hooks.example.com/x", "ORDERSTREAM_SINKS": "log"}
    settings = WorkerSettings.from_env(env)
    with capture_logs() as logged:
        assert report_idle_targets(settings, env) == ["webhook"]
    (event,) = logged
    assert (event["event"], event["sink"], event["sinks"]) == (
        "settings.sink_off",
        "webhook",
        "log",
    )


def test_no_warning_when_every_target_set_has_its_sink() -> None:
    env = {
        "ORDERSTREAM_WEBHOOK_URL": "https://hooks.example.com/x",
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_SECRET": "whsec_" + "A" * 44,
    }
    with capture_logs() as logged:
        assert report_idle_targets(WorkerSettings.from_env(env), env) == []
    assert logged == []
