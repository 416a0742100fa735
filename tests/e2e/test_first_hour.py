"""The operator's first hour (issue 13): each mistake of the trial, made again with the
console scripts as the newcomer made it, now answered by one clear line and the
documented exit code. Items are numbered as in the issue's trial list.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until
from tests.contract import whsec
from tests.fakes.processes import ScriptProcess, script
from tests.fakes.receiver import Receiver, Reply
from tests.fakes.tty import TtyProcess, run_on_tty

OPERATIONS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations" / "index.md"
RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]


def one_error_line(result: subprocess.CompletedProcess[str], prog: str, code: int) -> str:
    """The one stderr line of a failed command: no traceback, the documented exit code."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: ")
    return lines[0]


# -- 1. an endpoint without a scheme ---------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("writer", "orders", "USR001"), ("worker", "run"), ("worker", "dlq", "list")]
)
def test_1_an_endpoint_without_a_scheme_is_exit_2_naming_the_variable(
    run_cli: RunCli, command: tuple[str, ...]
) -> None:
    result = run_cli(*command, extra_env={"AWS_ENDPOINT_URL": "127.0.0.1:5055"}, check=False)
    line = one_error_line(result, command[0], 2)
    assert "AWS_ENDPOINT_URL: '127.0.0.1:5055' has no scheme (write http://127.0.0.1:5055)" in line


# -- 2. status names in the transition rules ------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ORDERSTREAM_NOTIFY_ON", "*>shipped", "case-sensitive: Shipped"),
        ("ORDERSTREAM_NOTIFY_ON", "Pending->Shipped", "'Pending-' is not a status"),
        ("ORDERSTREAM_ROUTES", "*>delivered:log", "case-sensitive: Delivered"),
    ],
)
def test_2_a_case_slip_or_a_malformed_rule_is_exit_2(
    run_cli: RunCli, variable: str, value: str, expected: str
) -> None:
    result = run_cli("worker", "run", extra_env={variable: value}, check=False)
    line = one_error_line(result, "worker", 2)
    assert line.startswith(f"worker: error: {variable}: ")
    assert expected in line


@pytest.mark.usefixtures("seeded")
def test_2_an_unknown_status_warns_and_each_filtered_change_is_said(
    start_worker: StartWorker,
) -> None:
    worker = start_worker(extra_env={"ORDERSTREAM_NOTIFY_ON": "Pending>Shiped,*>Returned"})
    wait_until(lambda: worker.named("lease.acquired"), timeout=20)
    warnings = {(e["status"], e.get("did_you_mean")) for e in worker.named("rules.unknown_status")}
    assert warnings == {("Shiped", "Shipped"), ("Returned", None)}
    filtered = {(e["old_status"], e["new_status"]) for e in worker.named("rules.filtered")}
    assert (None, "Pending") in filtered  # nothing the writer does gets through these rules
    assert ("Processing", "Shipped") in filtered
    assert all(e["level"] == "info" for e in worker.named("rules.filtered"))
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


# -- 3. two workers, one HTTP port ----------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_3_a_busy_http_port_is_one_line_naming_the_setting(
    start_worker: StartWorker, run_cli: RunCli
) -> None:
    port = str(free_port())
    first = start_worker(extra_env={"ORDERSTREAM_HTTP_PORT": port})
    wait_until(lambda: first.named("worker.started"), timeout=20)
    standby = run_cli("worker", "run", extra_env={"ORDERSTREAM_HTTP_PORT": port}, check=False)
    line = one_error_line(standby, "worker", 2)
    assert f"ORDERSTREAM_HTTP_PORT: cannot listen on port {port}" in line
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0


# -- 4. the wrong region ----------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("command", "code"), [(("writer", "orders", "USR001"), 2), (("worker", "run"), 2)]
)
def test_4_a_missing_table_names_the_region_and_endpoint(
    run_cli: RunCli, cli_env: dict[str, str], command: tuple[str, ...], code: int
) -> None:
    other_region = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    result = run_cli(*command, extra_env=other_region, check=False)
    line = one_error_line(result, command[0], code)
    endpoint = cli_env["AWS_ENDPOINT_URL"]
    assert f"table 'Users' does not exist (region eu-west-1, {endpoint})" in line
    assert "check AWS_REGION and AWS_ENDPOINT_URL" in line


@pytest.mark.usefixtures("seeded")
def test_4_a_run_in_the_wrong_region_leaves_no_state_table_there(run_cli: RunCli) -> None:
    """The orders table is checked before the state table is created: an empty state
    table left in the wrong region made `worker dlq redrive --all` there answer 0 as if
    all were well, instead of exit 2 naming the missing table."""
    other_region = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-central-1"}
    one_error_line(run_cli("worker", "run", extra_env=other_region, check=False), "worker", 2)
    redrive = run_cli("worker", "dlq", "redrive", "--all", extra_env=other_region, check=False)
    assert "state table 'orderstream-state' does not exist" in one_error_line(redrive, "worker", 2)


# -- 5. an error on a terminal, once --------------------------------------------------------


def test_5_on_a_terminal_a_worker_error_is_shown_once(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "ORDERSTREAM_LOG_FORMAT"}  # auto: console
    code, screen = run_on_tty(["worker", "run"], env)
    assert code == 2
    assert screen.count("does not exist") == 1, screen
    assert "worker: error: table 'Users' does not exist" in screen
    assert "Traceback" not in screen


# -- 6. --table after the command -----------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_6_table_is_accepted_after_the_command(run_cli: RunCli) -> None:
    result = run_cli("writer", "orders", "USR001", "--table", "Nope", check=False)
    assert "does not exist" in one_error_line(result, "writer", 2)
    assert "'Nope'" in result.stderr
    assert len(run_cli("writer", "orders", "USR001", "--table", "Users").stdout.splitlines()) == 2
    # Before the command, as before; after it wins when both are given.
    both = run_cli("writer", "--table", "Nope", "orders", "USR001", "--table", "Users")
    assert len(both.stdout.splitlines()) == 2


# -- 7. Ctrl-C, the progress bar, an empty DLQ ----------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_7_ctrl_c_during_load_says_so_on_its_own_line(cli_env: dict[str, str]) -> None:
    # Large enough to be still writing when the signal lands, even on a loaded machine.
    load = TtyProcess(["writer", "load", "--users", "30000", "--orders-per-user", "5"], cli_env)
    assert load.read_until(lambda text: "writing items [" in text, timeout=60), load.text
    load.interrupt()
    assert load.wait(timeout=30) == 130
    lines = load.text.rstrip("\n").split("\n")
    assert lines[-1] == "writer: error: interrupted (Ctrl-C): what was written so far stays"
    assert "Traceback" not in load.text
    assert load.text.endswith("\n")


@pytest.mark.usefixtures("seeded")
def test_7_the_progress_bar_labels_its_phases_with_rate_and_eta(cli_env: dict[str, str]) -> None:
    args = ["writer", "load", "--users", "20", "--orders-per-user", "2", "--updates", "10"]
    code, screen = run_on_tty(args, cli_env)
    assert code == 0, screen
    assert re.search(r"writing items \[#+\] 60/60 +done in \d+:\d\d", screen), screen
    assert re.search(r"status updates \[#+\] 10/10 +done in \d+:\d\d", screen), screen
    assert re.search(r"/s +ETA ", screen), screen


@pytest.mark.usefixtures("seeded")
def test_7_an_empty_dlq_says_so(cli_env: dict[str, str]) -> None:
    code, screen = run_on_tty(["worker", "dlq", "list"], cli_env)
    assert code == 0
    assert screen.strip().startswith("no dead letters")  # and, with no state table, where


# -- 8. compact console output, focused help ------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_8_worker_started_is_one_short_line_of_what_applies(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "ORDERSTREAM_LOG_FORMAT"}
    worker = TtyProcess(["worker", "run"], {**env, "ORDERSTREAM_LOG_LEVEL": "info"})
    assert worker.read_until(lambda text: "lease.acquired" in text, timeout=30), worker.text
    worker.interrupt()
    assert worker.wait(timeout=30) == 0
    (started,) = [line for line in worker.text.split("\n") if "worker.started" in line]
    for needle in ("table=Users", "sinks=log", "start=TRIM_HORIZON", "region=us-east-1"):
        assert needle in started
    for absent in ("('log',)", "None", "webhook_secret", "kcl_", "lease_s", "http_port"):
        assert absent not in started, started
    assert len(started) < 240  # was four lines of every setting


def test_8_a_secret_is_shown_only_when_set(
    run_cli: RunCli, cli_env: dict[str, str], receiver: Receiver
) -> None:
    run_cli("writer", "create-table")
    hook = {"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": receiver.url}
    secret = {"ORDERSTREAM_WEBHOOK_SECRET": whsec(b"first-hour-test-key-of-32-bytes!")}
    for extra, shown in (({}, None), (secret, "***")):
        worker = ScriptProcess(["worker", "run"], {**cli_env, **hook, **extra})
        try:
            wait_until(lambda w=worker: w.named("worker.started"), timeout=20)
            (started,) = worker.named("worker.started")
            assert started.get("webhook_secret") == shown
            assert started["webhook_url"] == receiver.url
            worker.signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
        finally:
            worker.stop()


def test_8_help_shows_defaults_and_only_the_commands_own_flags(run_cli: RunCli) -> None:
    run = run_cli("worker", "run", "--help").stdout
    assert "--idle-wait-ms MS" in run
    assert "(ORDERSTREAM_IDLE_WAIT_MS; default: 500)" in " ".join(run.split())
    assert "--lease-s SECONDS" in run
    assert "--kcl-failover-ms" not in run
    assert "VALUE" not in run
    fleet = run_cli("worker", "kcl", "run", "--help").stdout
    assert "--kcl-failover-ms MS" in fleet
    assert "--lease-s" not in fleet
    dlq = run_cli("worker", "dlq", "list", "--help").stdout
    assert "--webhook-url" not in dlq
    assert "--table NAME" in dlq


# -- 9. the same wording and exit codes in both tools ---------------------------------------


def test_9_no_region_is_worded_the_same_by_both_tools(cli_env: dict[str, str]) -> None:
    no_region = {k: v for k, v in cli_env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script(args[0]), *args[1:]],
            env=no_region,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    writer = run("writer", "orders", "USR001")
    worker = run("worker", "run")
    expected = "no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)"
    assert one_error_line(writer, "writer", 2) == f"writer: error: {expected}"
    assert one_error_line(worker, "worker", 2) == f"worker: error: {expected}"


@pytest.mark.parametrize(
    "command", [("writer", "orders", "USR001"), ("worker", "run"), ("worker", "status")]
)
def test_9_an_unreachable_endpoint_is_exit_1_in_both_tools(
    run_cli: RunCli, command: tuple[str, ...]
) -> None:
    down = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    result = run_cli(*command, extra_env=down, check=False)
    line = one_error_line(result, command[0], 1)
    assert f"cannot reach DynamoDB at {down['AWS_ENDPOINT_URL']}" in line


# -- 12. redrive without the sink, where /metrics listens -----------------------------------


@pytest.mark.usefixtures("seeded")
def test_12_redrive_without_the_sink_says_how_to_fix_it(
    start_worker: StartWorker, run_cli: RunCli, receiver: Receiver
) -> None:
    receiver.always(Reply(400))  # not retried: straight to the DLQ
    hook = {"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": receiver.url}
    worker = start_worker(extra_env=hook)
    wait_until(lambda: len(worker.named("notification.dead_lettered")) == 3, timeout=30)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    result = run_cli("worker", "dlq", "redrive", "--all", check=False)
    line = one_error_line(result, "worker", 2)
    assert "[" not in line  # no Python list
    assert "ORDERSTREAM_SINKS: these dead letters are for the webhook sink" in line
    assert "ORDERSTREAM_SINKS=log,webhook" in line


def test_12_the_docs_say_where_metrics_listen() -> None:
    operations = OPERATIONS_PAGE.read_text("utf-8").split("# Operations\n", 1)[1]
    assert "binds 0.0.0.0" in operations.split("Log events")[0]
