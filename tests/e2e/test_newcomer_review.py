"""What a newcomer's trial of this release found, driven through the console scripts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for
from tests.fakes.processes import script

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_the_demo_uses_its_own_aws_whatever_the_shell_points_at(
    cli_env: dict[str, str],
) -> None:
    """With a walk-through's AWS_ENDPOINT_URL exported, the demo wrote to that table,
    replayed its whole stream and crashed; now it always starts its own moto."""
    env = {**cli_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_PROFILE": "nope"}
    result = subprocess.run(
        [script("worker"), "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "embedded AWS at http://127.0.0.1:" in result.stdout
    assert "127.0.0.1:9\n" not in result.stdout
    assert "6 notifications, stopped gracefully" in result.stdout


@pytest.mark.usefixtures("seeded")
def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(cli_env: dict[str, str]) -> None:
    pipeline = f"{script('writer')} orders USR001 | head -c 1; {script('worker')} status | head -0"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline],
        check=False,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


@pytest.mark.usefixtures("seeded")
def test_a_worker_whose_stdout_closes_stops_with_one_line(cli_env: dict[str, str]) -> None:
    """`worker run | head` killed the reader thread (BrokenPipeError) while /readyz said
    200, then the process died with a traceback, its lease held."""
    worker = subprocess.Popen(
        [script("worker"), "run"],
        env={**cli_env, "ORDERSTREAM_SHUTDOWN_S": "5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    worker.stdout.readline()  # it runs and logs
    worker.stdout.close()  # the reader goes away, as `head -1` does
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert err.strip().splitlines() == [
        "worker: error: stdout was closed: stopped (nothing more can be logged)"
    ]


def test_an_operator_command_never_creates_the_state_table(
    run_cli: RunCli, moto_server: MotoServer
) -> None:
    """`AWS_REGION=eu-west-1 worker dlq list` created an empty state table there and
    said there were no dead letters."""
    listing = run_cli("worker", "dlq", "list", extra_env={"ORDERSTREAM_STATE_TABLE": "typo"})
    assert listing.returncode == 0
    redrive = run_cli(
        "worker",
        "dlq",
        "redrive",
        "--all",
        extra_env={"ORDERSTREAM_STATE_TABLE": "typo"},
        check=False,
    )
    assert redrive.returncode == 2
    assert "state table 'typo' does not exist (region us-east-1" in redrive.stderr
    assert client_for(moto_server.url).list_tables()["TableNames"] == []


def test_a_url_that_does_not_parse_is_never_echoed(run_cli: RunCli) -> None:
    """The parse error quoted the whole URL, its token and password included."""
    for url in (
        "https://hooks.example.com:70000/in?token=SUPERSECRET",
        "https://u:SUPERSECRET@hooks.example.com:70000/in",
    ):
        result = run_cli(
            "worker",
            "run",
            extra_env={"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": url},
            check=False,
        )
        assert result.returncode == 2
        assert "SUPERSECRET" not in result.stderr + result.stdout
        assert "ORDERSTREAM_WEBHOOK_URL" in result.stderr
