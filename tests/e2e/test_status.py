"""`worker status` against a moto-backed stream, as an operator runs it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import wait_until
from tests.fakes.processes import ScriptProcess

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

pytestmark = pytest.mark.usefixtures("seeded")


def _status(run_cli: RunCli) -> list[dict[str, object]]:
    result = run_cli("worker", "status", "--json")
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_status_shows_each_shard_its_checkpoint_lag_and_owner(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    before = _status(run_cli)
    assert len(before) == 1  # moto: one shard
    assert before[0]["checkpoint"] is None
    assert before[0]["owner"] is None
    assert int(str(before[0]["lag_ms"])) > 0  # the seed waits, unread

    worker = start_worker()
    wait_until(lambda: len(worker.notifications()) == 3, timeout=15)
    owner = worker.named("worker.started")[0]["owner"]
    wait_until(lambda: _status(run_cli)[0]["checkpoint"] is not None, timeout=10)
    running = _status(run_cli)[0]
    assert running["owner"] == owner
    assert running["lag_ms"] == 0  # caught up
    assert running["finished"] is False
    assert running["shard_id"] == worker.named("shard.started")[0]["shard_id"]

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    stopped = _status(run_cli)[0]
    assert stopped["owner"] is None  # released on the graceful stop
    assert stopped["checkpoint"] == running["checkpoint"]
    assert int(str(stopped["lag_ms"])) >= 0  # the new change waits for the next owner


def test_status_is_json_lines_when_stdout_is_not_a_terminal(run_cli: RunCli) -> None:
    result = run_cli("worker", "status")  # no --json: a pipe is not a TTY
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"shard_id", "parent_id", "checkpoint", "finished", "lag_ms", "owner"} <= set(rows[0])
    assert result.stderr == ""


def test_status_has_a_row_per_remote_sink(run_cli: RunCli) -> None:
    env = {"ORDERSTREAM_SINKS": "log,webhook", "ORDERSTREAM_WEBHOOK_URL": "http://127.0.0.1:9/"}
    result = run_cli("worker", "status", "--json", extra_env=env)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    sinks = [row for row in rows if "sink" in row]
    assert [row for row in rows if "shard_id" in row]  # the shards come first, as before
    assert sinks == [
        {
            "sink": "webhook",
            "disabled": False,
            "reason": None,
            "since": None,
            "breaker": "closed",
            "breaker_changed_at": None,
            "parked": 0,
            "oldest_parked_s": None,
            "next_attempt_at": None,
        }
    ]
