"""Worker settings: every ORDERSTREAM_* variable validated at start-up, naming itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract import whsec
from worker.core.errors import ConfigError
from worker.delivery.sinks.signing import SigningKey
from worker.settings import SETTINGS, WorkerSettings

WORKER = Path(sys.executable).parent / "worker"

# Each setting with values it must reject, and what else must be set for the check to
# apply (a sink's target is only checked when that sink is on).
WEBHOOK = {"ORDERSTREAM_SINKS": "webhook"}
HOOK = {**WEBHOOK, "ORDERSTREAM_WEBHOOK_URL": "https://hooks.example.com/x"}
KEY = b"settings-test-key-of-32-bytes!!!"
BAD_VALUES: dict[str, list[tuple[str, dict[str, str]]]] = {
    "ORDERSTREAM_TABLE": [("ab", {}), ("bad name!", {}), ("", {})],
    "ORDERSTREAM_APP": [("has space", {}), ("a#b", {}), ("x" * 129, {}), ("", {})],
    "ORDERSTREAM_STATE_TABLE": [("x", {}), ("state/table", {})],
    "ORDERSTREAM_STREAM_ARN": [
        ("not-an-arn", {}),
        # another table's stream (ORDERSTREAM_TABLE is Users)
        ("arn:aws:dynamodb:us-east-1:1:table/Archive/stream/2024-05-01T00:00:00.000", {}),
    ],
    "ORDERSTREAM_START": [("EARLIEST", {}), ("latest", {}), ("", {})],
    "ORDERSTREAM_SINKS": [("pager", {}), ("log,log", {}), ("", {}), (",", {})],
    "ORDERSTREAM_WEBHOOK_URL": [
        ("", WEBHOOK),  # required with the webhook sink
        ("ftp://hooks.example.com/x", WEBHOOK),
        ("hooks.example.com/x", WEBHOOK),
        ("https://", WEBHOOK),
        ("http://hooks.example.com/x", WEBHOOK),  # plain http off loopback
    ],
    "ORDERSTREAM_WEBHOOK_HEADERS": [
        ("Authorization: Bearer x", {}),  # JSON, not header lines
        ('["Authorization"]', {}),
        ('{"Content-Type": "text/plain"}', {}),  # ours
        ('{"X-Token": "a\\r\\nX-Evil: 1"}', {}),  # a header injection
        ('{"X Token": "a"}', {}),
        ('{"X-Token": 5}', {}),
    ],
    "ORDERSTREAM_WEBHOOK_SECRET": [
        ("change-me", {}),  # plain: refused with a hint, whatever the sinks
        ("whsec_%%%", {}),
        (whsec(b"short"), {}),
        (f"{whsec(KEY)},{whsec(KEY)}", {}),
        (",", {}),
    ],
    "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE": [("legacy", {}), ("true", HOOK)],  # no secret
    "ORDERSTREAM_WEBHOOK_ALLOW_HTTP": [("maybe", {}), ("2", {})],
    "ORDERSTREAM_WEBHOOK_VERIFY_TLS": [("sometimes", {})],
    "ORDERSTREAM_WEBHOOK_TIMEOUT_MS": [("99", {}), ("120001", {}), ("1.5", {}), ("ten", {})],
    "ORDERSTREAM_WEBHOOK_RATE": [("-1", {}), ("fast", {}), ("nan", {}), ("inf", {})],
    "ORDERSTREAM_BREAKER_FAILURES": [("0", {}), ("1001", {}), ("five", {})],
    "ORDERSTREAM_BREAKER_RATIO": [("0", {}), ("1.5", {}), ("half", {}), ("-0.5", {})],
    "ORDERSTREAM_BREAKER_OPEN_S": [("0", {}), ("86401", {}), ("2.5", {})],
    "ORDERSTREAM_SNS_TOPIC_ARN": [
        ("", {"ORDERSTREAM_SINKS": "sns"}),
        ("orders", {"ORDERSTREAM_SINKS": "sns"}),
    ],
    "ORDERSTREAM_SQS_QUEUE_URL": [
        ("", {"ORDERSTREAM_SINKS": "sqs"}),
        ("orders", {"ORDERSTREAM_SINKS": "sqs"}),
    ],
    "ORDERSTREAM_ENRICH": [("on", {}), ("Profile", {}), ("", {})],
    "ORDERSTREAM_ENRICH_TTL_S": [("-1", {}), ("86401", {}), ("1m", {})],
    "ORDERSTREAM_EMAIL_FROM": [
        ("", {"ORDERSTREAM_SINKS": "email"}),  # required with the email sink
        ("shop", {}),
        ("a@example.com, b@example.com", {}),
        ("shop@example.com\nBcc: x@example.com", {}),
    ],
    "ORDERSTREAM_EMAIL_TEMPLATES": [
        (
            "/nonexistent/templates",
            {"ORDERSTREAM_SINKS": "email", "ORDERSTREAM_EMAIL_FROM": "a@b.c"},
        ),
    ],
    "ORDERSTREAM_EVENTBRIDGE_BUS": [("", {}), ("my bus", {}), ("b" * 257, {})],
    "ORDERSTREAM_EVENTBRIDGE_SOURCE": [("", {}), ("aws.orders", {}), ("my source", {})],
    "ORDERSTREAM_MAX_ATTEMPTS": [("0", {}), ("101", {}), ("eight", {}), ("", {})],
    "ORDERSTREAM_RETRY_SCHEDULE": [
        ("5", {}),
        ("5s,,5m", {}),
        ("-1s", {}),
        ("1w", {}),
        ("", {}),
        ("0s", {}),
        ("99999d", {}),
    ],
    "ORDERSTREAM_RETRY_BASE_MS": [("0", {}), ("-1", {}), ("0.5", {})],
    "ORDERSTREAM_RETRY_CAP_MS": [
        ("0", {}),
        ("3600001", {}),
        ("100", {"ORDERSTREAM_RETRY_BASE_MS": "500"}),  # below the base
    ],
    "ORDERSTREAM_LOG_FORMAT": [("xml", {}), ("JSON", {})],
    "ORDERSTREAM_LOG_LEVEL": [("verbose", {}), ("critical", {})],
    "ORDERSTREAM_HTTP_PORT": [("65536", {}), ("-1", {}), ("http", {})],
    "ORDERSTREAM_HTTP_HOST": [("example.com", {}), ("0.0.0.0:80", {}), ("", {}), ("256.0.0.1", {})],
    "ORDERSTREAM_DEDUP": [("maybe", {}), ("", {})],
    "ORDERSTREAM_DEDUP_TTL_S": [("59", {}), ("2592001", {})],
    "ORDERSTREAM_DLQ_TTL_DAYS": [("-1", {}), ("3651", {}), ("two", {})],
    "ORDERSTREAM_NOTIFY_ON": [
        ("Pending", {}),
        ("Pending>", {}),
        (",", {}),
        ("Pending", {"ORDERSTREAM_ROUTES": "*>*:log"}),  # named even when routes are set
    ],
    "ORDERSTREAM_ROUTES": [
        ("*>*:webhook", {}),  # a sink that is not on
        ("*>*", {}),
        ("Pending:log", {}),
        ("*>*:", {}),
    ],
    "ORDERSTREAM_CONCURRENCY": [("0", {}), ("1025", {})],
    "ORDERSTREAM_SHUTDOWN_S": [("0", {}), ("3601", {})],
    "ORDERSTREAM_STATS_INTERVAL_S": [("0", {})],
    "ORDERSTREAM_LEASE_S": [("2", {}), ("601", {})],
    "ORDERSTREAM_IDLE_WAIT_MS": [("199", {}), ("10001", {})],
    "ORDERSTREAM_DISCOVERY_INTERVAL_S": [("0", {})],
    "ORDERSTREAM_MAX_SHARDS": [("0", {}), ("1001", {})],
    "ORDERSTREAM_PROCESSES": [("0", {}), ("65", {}), ("two", {})],
    "ORDERSTREAM_KCL_FAILOVER_MS": [("999", {}), ("ten", {})],
    "ORDERSTREAM_KCL_ASSIGNMENT_MS": [("499", {})],
    "ORDERSTREAM_KCL_PARENT_POLL_MS": [("99", {})],
    "ORDERSTREAM_KCL_MAX_LEASES": [("0", {})],
    "ORDERSTREAM_KCL_METRICS": [("ALL", {}), ("none", {})],
}
# The KCL jar folder is any path (settings do not look at the disk): there is no bad
# value to reject.
NO_BAD_VALUE = {"ORDERSTREAM_KCL_JARS"}

CASES = [
    pytest.param(env, value, extra, id=f"{env}={value!r}")
    for env, values in BAD_VALUES.items()
    for value, extra in values
]


def test_every_setting_has_bad_values_here() -> None:
    assert set(BAD_VALUES) | NO_BAD_VALUE == {s.env for s in SETTINGS}


@pytest.mark.parametrize(("env", "value", "extra"), CASES)
def test_a_bad_value_names_its_variable(env: str, value: str, extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({**extra, env: value})
    assert caught.value.setting == env
    assert str(caught.value).startswith(f"{env}: ")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("name", "value", "env"),
    [
        ("max_attempts", "0", "ORDERSTREAM_MAX_ATTEMPTS"),
        ("sinks", "pager", "ORDERSTREAM_SINKS"),
        ("notify_on", "nope", "ORDERSTREAM_NOTIFY_ON"),
    ],
)
def test_a_bad_cli_flag_names_the_setting(name: str, value: str, env: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({}, {name: value})
    assert caught.value.setting == env


def test_a_flag_wins_over_the_environment() -> None:
    settings = WorkerSettings.from_env(
        {"ORDERSTREAM_MAX_ATTEMPTS": "0"}, {"max_attempts": "3", "table": None}
    )
    assert settings.max_attempts == 3


def test_defaults_follow_the_design() -> None:
    settings = WorkerSettings.from_env({})
    assert (settings.table, settings.app, settings.state_table) == (
        "Users",
        "orderstream",
        "orderstream-state",
    )
    assert (settings.start, settings.sinks, settings.dedup) == ("TRIM_HORIZON", ("log",), False)
    # Issue 14: a short burst (3 attempts within a few seconds), then the retry lane's
    # schedule of about a day (section 3 of docs/design.md: 8 attempts in ~a minute, then the DLQ)
    assert (settings.max_attempts, settings.retry_base_ms, settings.retry_cap_ms) == (3, 200, 2000)
    assert settings.retry_schedule == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    assert sum(settings.retry_schedule) / 3600 == pytest.approx(27.6, abs=0.1)
    assert (settings.http_port, settings.concurrency, settings.shutdown_s) == (0, 32, 20)
    assert settings.http_host == "0.0.0.0"  # containers are probed from outside
    assert settings.webhook_headers == {}
    assert settings.rules.sinks_for(None, "Pending") == ("log",)


def test_good_values_are_parsed() -> None:
    settings = WorkerSettings.from_env(
        {
            "ORDERSTREAM_SINKS": " webhook , sqs ",
            "ORDERSTREAM_WEBHOOK_URL": "http://127.0.0.1:8080/hook",  # loopback may be http
            "ORDERSTREAM_WEBHOOK_SECRET": whsec(KEY),
            "ORDERSTREAM_SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q.fifo",
            "ORDERSTREAM_MAX_ATTEMPTS": "3",
            "ORDERSTREAM_DEDUP": "on",
            "ORDERSTREAM_NOTIFY_ON": "*>Cancelled,Processing>Shipped",
            "ORDERSTREAM_ROUTES": "*>Cancelled:sqs,*>*:webhook",
            "ORDERSTREAM_START": "LATEST",
        }
    )
    assert settings.sinks == ("webhook", "sqs")
    assert settings.max_attempts == 3
    assert settings.dedup is True
    assert settings.start == "LATEST"
    assert settings.rules.sinks_for("Pending", "Cancelled") == ("sqs",)
    assert settings.rules.sinks_for("Processing", "Shipped") == ("webhook",)
    assert settings.rules.sinks_for("Shipped", "Delivered") == ()


@pytest.mark.parametrize(
    "url", ["http://localhost:9/h", "http://127.0.0.1/h", "http://[::1]:9/h", "https://x.example/h"]
)
def test_http_is_allowed_on_loopback_and_https_anywhere(url: str) -> None:
    settings = WorkerSettings.from_env({**WEBHOOK, "ORDERSTREAM_WEBHOOK_URL": url})
    assert settings.webhook_url == url


def test_http_off_loopback_is_allowed_when_asked_for() -> None:
    settings = WorkerSettings.from_env(
        {
            **WEBHOOK,
            "ORDERSTREAM_WEBHOOK_URL": "http://hooks.internal/x",
            "ORDERSTREAM_WEBHOOK_ALLOW_HTTP": "true",
        }
    )
    assert settings.webhook_allow_http is True


def test_the_secrets_are_decoded_and_masked_in_the_summary() -> None:
    old = b"settings-test-old-key-32-bytes!!"
    secrets = f"{whsec(KEY)},{whsec(old)}"
    settings = WorkerSettings.from_env({**HOOK, "ORDERSTREAM_WEBHOOK_SECRET": secrets})
    assert settings.webhook_secret == (SigningKey(KEY), SigningKey(old))
    assert settings.webhook_legacy_signature is False
    summary = settings.safe_summary()
    assert summary["webhook_secret"] == "***"
    text = json.dumps(summary, default=str) + repr(settings)
    for leak in ("settings-test", whsec(KEY)[6:18], whsec(old)[6:18]):
        assert leak not in text


def test_an_empty_secret_means_unsigned() -> None:
    settings = WorkerSettings.from_env({**HOOK, "ORDERSTREAM_WEBHOOK_SECRET": ""})
    assert settings.webhook_secret == ()
    assert "webhook_secret" not in settings.safe_summary()


def test_a_plain_secret_is_refused_naming_the_setting_not_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({**HOOK, "ORDERSTREAM_WEBHOOK_SECRET": "hunter2-plain"})
    message = str(caught.value)
    assert message.startswith("ORDERSTREAM_WEBHOOK_SECRET: secret 1 is not in the whsec_")
    assert "hunter2" not in message


def test_the_legacy_signature_is_off_unless_asked() -> None:
    secret = {**HOOK, "ORDERSTREAM_WEBHOOK_SECRET": whsec(KEY)}
    assert WorkerSettings.from_env(secret).webhook_legacy_signature is False
    asked = {**secret, "ORDERSTREAM_WEBHOOK_LEGACY_SIGNATURE": "true"}
    settings = WorkerSettings.from_env(asked)
    assert settings.webhook_legacy_signature is True
    assert settings.safe_summary()["webhook_legacy_signature"] == "on"


def test_the_summary_names_only_what_applies_as_text() -> None:
    default = WorkerSettings.from_env({"AWS_REGION": "eu-west-1"}).safe_summary("run")
    assert default == {
        "table": "Users",
        "app": "orderstream",
        "state_table": "orderstream-state",
        "start": "TRIM_HORIZON",
        "sinks": "log",
        "region": "eu-west-1",
    }
    tuned = WorkerSettings.from_env(
        {
            "ORDERSTREAM_SINKS": "log,sns",
            "ORDERSTREAM_SNS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t",
            "ORDERSTREAM_DEDUP": "on",
            "ORDERSTREAM_KCL_FAILOVER_MS": "3000",
            "ORDERSTREAM_WEBHOOK_SECRET": whsec(KEY),  # unused: no webhook sink
        }
    )
    run = tuned.safe_summary("run")
    assert run["sinks"] == "log,sns"
    assert run["sns_topic_arn"] == "arn:aws:sns:eu-west-1:1:t"
    assert run["dedup"] == "on"
    assert "kcl_failover_ms" not in run  # fleet tuning is not the poller's
    assert "webhook_secret" not in run  # not set for a sink in use
    assert tuned.safe_summary("kcl run")["kcl_failover_ms"] == "3000"


# -- the console script --------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTREAM_")}
    return {**env, **extra}


def test_worker_run_with_a_bad_value_exits_2_with_one_line_naming_it() -> None:
    """Run as a user would; the cases run side by side to keep the test fast."""
    cases = [
        (["run"], {"ORDERSTREAM_MAX_ATTEMPTS": "0"}, "ORDERSTREAM_MAX_ATTEMPTS"),
        (
            ["run"],
            {"ORDERSTREAM_NOTIFY_ON": "Pending", "ORDERSTREAM_ROUTES": "*>*:log"},
            "ORDERSTREAM_NOTIFY_ON",
        ),
        (["run"], {"ORDERSTREAM_SINKS": "webhook"}, "ORDERSTREAM_WEBHOOK_URL"),
        (["run", "--concurrency", "0"], {}, "ORDERSTREAM_CONCURRENCY"),
    ]
    processes = [
        subprocess.Popen(
            [str(WORKER), *argv],
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, env, _ in cases
    ]
    for process, (argv, env, named) in zip(processes, cases, strict=True):
        stdout, stderr = process.communicate(timeout=60)
        where = f"{argv} {env}"
        assert process.returncode == 2, where
        lines = stderr.splitlines()
        assert len(lines) == 1, f"{where}: {stderr!r}"
        assert lines[0].startswith(f"worker: error: {named}: "), where
        assert "Traceback" not in stderr
        (event,) = [json.loads(line) for line in stdout.splitlines()]  # plus one JSON event
        assert (event["event"], event["level"]) == ("worker.error", "error"), where
        assert event["error"].startswith(f"{named}: "), where


def test_worker_run_without_a_region_is_one_line_not_a_traceback() -> None:
    env = clean_env()
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(key, None)
    result = subprocess.run(
        [str(WORKER), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("worker: error: ")
    assert "region" in lines[0]
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["event"], event["level"]) == ("worker.error", "error")


def test_the_retry_schedule_reads_durations_and_off() -> None:
    parsed = WorkerSettings.from_env({"ORDERSTREAM_RETRY_SCHEDULE": "500ms, 5s,2m,1.5h,1d"})
    assert parsed.retry_schedule == (0.5, 5.0, 120.0, 5400.0, 86400.0)
    assert WorkerSettings.from_env({"ORDERSTREAM_RETRY_SCHEDULE": "off"}).retry_schedule == ()


@pytest.mark.parametrize(("text", "processes"), [("auto", "auto"), ("AUTO", "auto"), ("3", 3)])
def test_processes_are_auto_by_default_or_a_number(text: str, processes: object) -> None:
    assert WorkerSettings.from_env({}).processes == "auto"
    assert WorkerSettings.from_env({"ORDERSTREAM_PROCESSES": text}).processes == processes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("webhok", "'webhok' is not a sink (did you mean 'webhook'?): choose from "),
        ("log,pagerduty", "'pagerduty' is not a sink: choose from "),
    ],
)
def test_an_unknown_sink_is_named_with_the_closest_one(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({"ORDERSTREAM_SINKS": value})
    assert message in str(caught.value)
