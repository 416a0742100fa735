"""`worker kcl run` without the daemon: its properties, log lines, and start-up errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.conftest import SAFE_AWS_ENV
from worker.core.errors import ConfigError, SetupError
from worker.kcl import daemonlog, launcher, properties
from worker.settings import WorkerSettings
from writer import logs

WORKER = Path(sys.executable).parent / "worker"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in text.splitlines() if not line.startswith("#"))
    return dict(pairs)


def build(env: dict[str, str], **settings: str) -> dict[str, str]:
    worker_settings = WorkerSettings.from_env({"AWS_REGION": "eu-west-1", **settings})
    return parse_properties(
        properties.build(
            worker_settings,
            stream_arn=ARN,
            worker_id="host:1:abc",
            executable="/tmp/x/processor",
            endpoints=properties.Endpoints.from_env(env),
            credentials="EnvironmentVariableCredentialsProvider",
            python_version="3.11",
        )
    )


def test_properties_carry_the_settings_with_safe_defaults() -> None:
    props = build({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, ORDERSTREAM_APP="fleet")

    assert props["applicationName"] == "fleet"
    assert props["streamArn"] == ARN
    assert props["workerId"] == "host:1:abc"
    assert props["executableName"] == "/tmp/x/processor"
    assert props["initialPositionInStream"] == "TRIM_HORIZON"
    assert props["regionName"] == "eu-west-1"
    assert props["retrievalMode"] == "POLLING"
    assert props["metricsLevel"] == "NONE"
    assert props["disableWorkerMetrics"] == "true"
    assert props["failoverTimeMillis"] == "10000"
    assert props["idleTimeBetweenReadsInMillis"] == "500"
    assert props["shutdownGraceMillis"] == "17000"  # inside ORDERSTREAM_SHUTDOWN_S=20
    assert "leaseAssignmentIntervalMillis" not in props  # KCL's default: 2 x failover
    assert "maxLeasesForWorker" not in props
    for key in ("dynamoDBEndpoint", "dynamoDBStreamsEndpoint", "kinesisEndpoint"):
        assert props[key] == "http://127.0.0.1:4566"


def test_kcl_tuning_settings_reach_the_properties() -> None:
    props = build(
        {},
        ORDERSTREAM_START="LATEST",
        ORDERSTREAM_KCL_FAILOVER_MS="3000",
        ORDERSTREAM_KCL_ASSIGNMENT_MS="1000",
        ORDERSTREAM_KCL_PARENT_POLL_MS="500",
        ORDERSTREAM_KCL_MAX_LEASES="4",
        ORDERSTREAM_KCL_METRICS="SUMMARY",
        ORDERSTREAM_IDLE_WAIT_MS="250",
        ORDERSTREAM_SHUTDOWN_S="2",
    )

    assert props["initialPositionInStream"] == "LATEST"
    assert props["failoverTimeMillis"] == "3000"
    assert props["leaseAssignmentIntervalMillis"] == "1000"
    assert props["parentShardPollIntervalMillis"] == "500"
    assert props["maxLeasesForWorker"] == "4"
    assert props["metricsLevel"] == "SUMMARY"
    assert props["idleTimeBetweenReadsInMillis"] == "250"
    assert props["shutdownGraceMillis"] == "1000"
    # No override: the SDK's own endpoints (real AWS in production).
    assert not {"dynamoDBEndpoint", "dynamoDBStreamsEndpoint", "kinesisEndpoint"} & set(props)


def test_service_specific_endpoints_win() -> None:
    props = build(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2",
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": "http://127.0.0.1:3",
        }
    )
    assert props["dynamoDBEndpoint"] == "http://127.0.0.1:2"
    assert props["dynamoDBStreamsEndpoint"] == "http://127.0.0.1:3"
    assert props["kinesisEndpoint"] == "http://127.0.0.1:1"
    # Without a generic one, KCL's unused Kinesis client stays on the DynamoDB endpoint.
    only_ddb = build({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2"})
    assert only_ddb["kinesisEndpoint"] == "http://127.0.0.1:2"


def test_fleet_mode_needs_a_region() -> None:
    with pytest.raises(SetupError) as caught:
        properties.build(
            WorkerSettings.from_env({}),
            stream_arn=ARN,
            worker_id="w",
            executable="/x",
            endpoints=properties.Endpoints(None, None, None),
            credentials="DefaultCredentialsProvider",
            python_version="3.11",
        )
    assert str(caught.value) == "no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDERSTREAM_KCL_FAILOVER_MS", "999"),
        ("ORDERSTREAM_KCL_ASSIGNMENT_MS", "fast"),
        ("ORDERSTREAM_KCL_PARENT_POLL_MS", "0"),
        ("ORDERSTREAM_KCL_MAX_LEASES", "0"),
        ("ORDERSTREAM_KCL_METRICS", "none"),
    ],
)
def test_bad_kcl_settings_name_themselves(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({name: value})
    assert caught.value.setting == name


def test_cli_flags_reach_the_processes_as_variables() -> None:
    env = launcher.child_env({"PATH": "/bin", "ORDERSTREAM_SINKS": "log"}, {"sinks": "webhook"})
    assert env == {"PATH": "/bin", "ORDERSTREAM_SINKS": "webhook"}


# -- the daemon's output ------------------------------------------------------------


def test_a_logback_line_becomes_a_daemon_event() -> None:
    line = daemonlog.parse(
        "@kcl\tWARN\tsoftware.amazon.kinesis.coordinator.Scheduler\tmain\t\tLease lost \n",
        "stdout",
    )
    assert line == daemonlog.Line(
        "warning",
        fields={
            "logger": "software.amazon.kinesis.coordinator.Scheduler",
            "thread": "main",
            "message": "Lease lost",
        },
    )
    error = daemonlog.parse(
        "@kcl\tERROR\tx.Y\tmain\tjava.lang.X: boom at a.b(C.java:1)\tfailed", "stdout"
    )
    assert error is not None
    assert error.level == "error"
    assert error.fields["error"] == "java.lang.X: boom at a.b(C.java:1)"


def test_a_childs_json_line_passes_through_as_its_own_event() -> None:
    text = json.dumps({"event": "notification", "level": "info", "order_id": "O1"})
    line = daemonlog.parse(text + "\n", "stderr")
    assert line is not None
    assert line.passthrough == {"event": "notification", "level": "info", "order_id": "O1"}


@pytest.mark.parametrize(
    ("text", "stream", "level"),
    [
        ("Traceback (most recent call last):", "stderr", "warning"),
        ('{"not": "an event"}', "stderr", "warning"),
        ("SLF4J: something", "stdout", "info"),
    ],
)
def test_other_lines_are_kept_as_daemon_events(text: str, stream: str, level: str) -> None:
    line = daemonlog.parse(text, stream)
    assert line == daemonlog.Line(level, fields={"stream": stream, "message": text})


def test_blank_lines_are_dropped() -> None:
    assert daemonlog.parse("  \n", "stdout") is None


@pytest.mark.parametrize(
    ("level", "root", "capped"), [("info", "INFO", True), ("debug", "DEBUG", False)]
)
def test_the_logback_config_follows_the_log_level(level: str, root: str, capped: bool) -> None:
    config = ET.fromstring(daemonlog.logback_xml(level))  # noqa: S314 - our own XML
    assert config.find("root").get("level") == root  # type: ignore[union-attr]  # a missing <root> fails the test anyway
    loggers = {e.get("name"): e.get("level") for e in config.iter("logger")}
    assert loggers["software.amazon.kinesis.multilang.DrainChildSTDERRTask"] == "OFF"
    assert (daemonlog.QUIET_LOGGERS[0] in loggers) is capped
    assert config.findtext("appender/encoder/pattern") == daemonlog.PATTERN


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    before = structlog.get_config()
    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    yield stream
    structlog.configure(**before)


def test_the_emitter_passes_child_lines_unchanged_and_renders_daemon_lines(
    output: io.StringIO,
) -> None:
    emit = launcher.Emitter("json")
    child = json.dumps({"event": "notification", "level": "info", "timestamp": "t", "id": "1"})
    for text, stream in [
        (child, "stderr"),
        ("@kcl\tINFO\ta.Scheduler\tmain\t\tInitialization complete.", "stdout"),
        ("@kcl\tINFO\ta.MessageWriter\tmain\t\tMessage size == 66 bytes", "stdout"),
        ("@kcl\tDEBUG\ta.B\tmain\t\tnoise", "stdout"),
    ]:
        line = daemonlog.parse(text, stream)
        assert line is not None
        emit(line, text)

    lines = output.getvalue().splitlines()
    assert lines[0] == child
    daemon = json.loads(lines[1])
    assert (daemon["event"], daemon["level"], daemon["message"]) == (
        "kcl.daemon",
        "info",
        "Initialization complete.",
    )
    assert len(lines) == 2  # debug (and KCL's INFO bookkeeping) is below the log level


@pytest.mark.parametrize(
    ("logger", "message", "level"),
    [
        ("software.amazon.kinesis.coordinator.Scheduler", "Initialization complete.", "info"),
        ("x.DynamoDBLeaseRefresher", "Assigned lease shardId-1 ownership from a to b", "info"),
        ("orderstream.kcl.StreamsMultiLangDaemon", "Graceful shutdown complete", "info"),
        ("x.Scheduler", "Lease table is still empty. Checking again in 3000 ms", "debug"),
        ("x.MessageWriter", "Writing ProcessRecordsMessage to child process", "debug"),
        ("x.MigrationStateMachineImpl", "Initializing MigrationStateMachine", "debug"),
    ],
)
def test_only_the_kcl_info_lines_that_matter_stay_at_info(
    logger: str, message: str, level: str
) -> None:
    line = daemonlog.parse(f"@kcl\tINFO\t{logger}\tmain\t\t{message}", "stdout")
    assert line is not None
    assert line.level == level


# -- start-up errors: one line, exit 2, before anything is started --------------------


def run_worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERSTREAM_", "JAVA_HOME"))}
    return subprocess.run(
        [str(WORKER), *args],
        env={**base, **SAFE_AWS_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_documents_fleet_mode() -> None:
    result = run_worker("kcl", "run", "--help")
    assert result.returncode == 0
    assert "Fleet mode" in result.stdout
    assert "--kcl-failover-ms" in result.stdout
    assert "CoordinatorState" in result.stdout


def test_without_java_it_exits_2_with_one_line() -> None:
    result = run_worker("kcl", "run", PATH=str(Path(sys.executable).parent))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "worker: error: java not found: fleet mode needs Java 8+ on PATH (or JAVA_HOME)"
    ]


def test_without_the_jars_it_exits_2_naming_the_setting(tmp_path: Path) -> None:
    fake_java = tmp_path / "bin" / "java"
    fake_java.parent.mkdir()
    fake_java.write_text("#!/bin/sh\nexit 99\n")  # found, never run: the jars are checked first
    fake_java.chmod(0o700)
    result = run_worker("kcl", "run", JAVA_HOME=str(tmp_path), ORDERSTREAM_KCL_JARS=str(tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("worker: error: KCL jars not found: no orderstream-kcl-*.jar in")
    assert "ORDERSTREAM_KCL_JARS" in line


def test_without_amazon_kclpy_it_is_a_setup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orderstream-kcl-0.1.0.jar").touch()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").touch(mode=0o700)
    monkeypatch.setattr(launcher.importlib.util, "find_spec", lambda _name: None)
    settings = WorkerSettings.from_env({"ORDERSTREAM_KCL_JARS": str(tmp_path)})
    with pytest.raises(SetupError, match="amazon_kclpy is not installed"):
        launcher.find_runtime(settings, {"JAVA_HOME": str(tmp_path)})
