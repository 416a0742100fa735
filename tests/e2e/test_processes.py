"""Reader processes (`ORDERSTREAM_PROCESSES`): shards read by child processes, one worker
to the outside; `auto` on one shard starts none."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.conftest import wait_until
from tests.fakes.processes import ScriptProcess, logged_at, reader_processes_of, running

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]
TWO = {"ORDERSTREAM_PROCESSES": "2", "ORDERSTREAM_LEASE_S": "3"}

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]


def _readers(worker: ScriptProcess) -> list[int]:
    return reader_processes_of(worker.process.pid)


def test_children_deliver_stats_cover_them_and_sigterm_stops_all(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    worker = start_worker(extra_env=TWO)
    wait_until(lambda: len(worker.notifications()) == 3, timeout=30)
    assert worker.named("process.started")[0]["processes"] == 2
    readers = _readers(worker)
    assert len(readers) >= 2

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: len(worker.notifications()) == 4, timeout=10)
    # The parent's stats include what its children read and sent.
    wait_until(lambda: any(s["checkpoints"] >= 2 for s in worker.named("worker.stats")), timeout=10)

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    wait_until(lambda: not any(running(pid) for pid in readers), timeout=10)
    assert len({n["id"] for n in worker.notifications()}) == 4


def test_a_reader_process_stopped_alone_exits_and_its_shard_is_read_again(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    """A SIGTERM to a reader process alone: it stops its readers and exits, and the
    parent plans its shard again, so the next change is still delivered."""
    worker = start_worker(extra_env=TWO)
    wait_until(lambda: len(worker.notifications()) == 3, timeout=30)
    readers = _readers(worker)
    assert len(readers) == 2
    for pid in readers:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(running(pid) for pid in readers), timeout=15)

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: len(worker.notifications()) == 4, timeout=30)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_children_of_a_killed_parent_stop_and_a_standby_takes_over(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    active = start_worker(extra_env=TWO)
    wait_until(lambda: len(active.notifications()) == 3, timeout=30)
    readers = _readers(active)
    standby = start_worker(extra_env=TWO)
    wait_until(lambda: standby.named("lease.waiting"), timeout=15)

    killed = time.time()  # just before the kill: an early bound on its instant
    active.kill()  # kill -9: the children's pipe to it closes
    wait_until(lambda: not any(running(pid) for pid in readers), timeout=15)
    wait_until(lambda: standby.named("lease.acquired"), timeout=15)
    # The lease ran out at most 3 s after the kill (its last renewal came before); the
    # standby's own timestamp says when it took over, not this test's polling.
    (acquired,) = standby.named("lease.acquired")
    assert logged_at(acquired) - killed < 3 + 3
    run_cli("writer", "set-status", "USR001", "ORD1001", "Delivered")
    wait_until(
        lambda: any(
            n["order_id"] == "ORD1001" and n["new_status"] == "Delivered"
            for n in standby.notifications()
        ),
        timeout=20,
    )


def test_an_idle_stop_with_reader_processes_does_not_wait_out_the_budget(
    start_worker: StartWorker,
) -> None:
    """Defect 4: the children were told to stop only after the drain had waited the
    whole budget for shards that could not end, so an idle stop took SHUTDOWN_S - 1
    seconds, logged shutdown.timeout, and the children kept reading meanwhile."""
    worker = start_worker(extra_env={**TWO, "ORDERSTREAM_SHUTDOWN_S": "20"})
    wait_until(lambda: len(worker.notifications()) == 3, timeout=30)
    wait_until(lambda: worker.named("shard.started"), timeout=10)

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    assert worker.named("shutdown.timeout") == []  # every shard ended within the budget
    assert worker.named("process.stop_timeout") == []  # no child had to be killed
    assert worker.named("lease.released")
    stopping = [e["event"] for e in worker.snapshot()]
    assert stopping.index("lease.released") > max(
        i for i, name in enumerate(stopping) if name == "shard.stopped"
    )


def test_auto_reads_a_one_shard_stream_in_the_worker_process_alone(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    """The default, ORDERSTREAM_PROCESSES=auto: no reader process for a single shard."""
    worker = start_worker()
    wait_until(lambda: len(worker.notifications()) == 3, timeout=30)
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: len(worker.notifications()) == 4, timeout=10)
    assert worker.named("process.started") == []
    assert _readers(worker) == []
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
