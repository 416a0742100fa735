"""`worker run` as a user runs it: notifications, restart, SIGTERM, hot standby."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.conftest import free_port, wait_until
from tests.fakes.processes import ScriptProcess, logged_at

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

pytestmark = pytest.mark.usefixtures("seeded")


def _changes(worker: ScriptProcess) -> list[tuple[str, str | None, str]]:
    return [(n["order_id"], n["old_status"], n["new_status"]) for n in worker.notifications()]


def test_a_status_change_becomes_a_log_notification_within_two_seconds(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    worker = start_worker()
    wait_until(lambda: len(worker.notifications()) == 3, timeout=15)  # the seed's inserts

    moved = run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    written = logged_at({"timestamp": json.loads(moved.stdout)["updated_at"]})  # before UpdateItem
    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in _changes(worker), timeout=15)

    body = worker.notifications()[-1]
    assert body["type"] == "order.status_changed"
    assert body["user_id"] == "USR001"
    assert body["amount"] == "30"
    assert set(body) >= {"id", "occurred_at", "shard_id", "sequence_number"}
    # From the writer's clock just before its UpdateItem to the worker's notification
    # line: the writer's start-up and this test's polling no longer count.
    assert logged_at(body) - written < 2

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert worker.named("lease.released")


def test_restart_resumes_at_the_checkpoint_without_loss_or_repeat(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    first = start_worker()
    wait_until(lambda: len(first.notifications()) == 3, timeout=15)
    first.signal(signal.SIGINT)
    assert first.wait(timeout=20) == 0

    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    run_cli("writer", "put-order", "USR002", "ORD2001", "--amount", "12.50")

    second = start_worker()
    wait_until(lambda: len(second.notifications()) == 2, timeout=15)
    assert _changes(second) == [("ORD1002", "Processing", "Shipped"), ("ORD2001", None, "Pending")]
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
    assert len(second.notifications()) == 2  # nothing from before the checkpoint again


def test_sigterm_exits_zero_within_the_shutdown_budget(start_worker: StartWorker) -> None:
    worker = start_worker(extra_env={"ORDERSTREAM_SHUTDOWN_S": "5"})
    wait_until(lambda: worker.named("shard.started"), timeout=15)
    signalled = time.time()  # just before the signal: an early bound on its instant
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0  # a safety net: the budget is measured below
    # The summary line is the worker's last act; its timestamp is on the worker's clock,
    # so this test's own scheduling and the pipe's delay do not count.
    (stopped,) = worker.named("worker.stopped")
    assert logged_at(stopped) - signalled < 5
    assert worker.named("shutdown.timeout") == []
    assert worker.named("lease.released")
    assert worker.named("worker.stopped")


def test_standby_takes_over_after_kill_9_and_nothing_is_lost(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    fast_lease = {"ORDERSTREAM_LEASE_S": "3"}
    active = start_worker(extra_env=fast_lease)
    wait_until(lambda: len(active.notifications()) == 3, timeout=15)
    standby = start_worker(extra_env=fast_lease)
    wait_until(lambda: standby.named("lease.waiting"), timeout=15)
    assert not standby.named("lease.acquired")
    (started,) = active.named("worker.started")
    assert standby.named("lease.waiting")[0]["holder"] == started["owner"]  # whom it waits for

    killed = time.time()  # just before the kill: an early bound on its instant
    active.kill()
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: standby.named("lease.acquired"), timeout=15)
    # The last renewal came before the kill, so the lease ran out at most 3 s after it;
    # the standby's own timestamp, not this test's polling, says when it took over.
    (acquired,) = standby.named("lease.acquired")
    assert logged_at(acquired) - killed < 3 + 2  # the lease time, plus polling slack

    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in _changes(standby), timeout=10)
    delivered = {n["id"] for n in active.notifications()} | {
        n["id"] for n in standby.notifications()
    }
    assert len(delivered) == 4  # three inserts and the move, each under one id


def test_standby_takes_over_at_once_after_a_graceful_stop(start_worker: StartWorker) -> None:
    slow_lease = {"ORDERSTREAM_LEASE_S": "60"}
    active = start_worker(extra_env=slow_lease)
    wait_until(lambda: active.named("lease.acquired"), timeout=15)
    standby = start_worker(extra_env=slow_lease)
    wait_until(lambda: standby.named("lease.waiting"), timeout=15)

    active.signal(signal.SIGTERM)
    assert active.wait(timeout=20) == 0
    (released,) = active.named("lease.released")
    wait_until(lambda: standby.named("lease.acquired"), timeout=15)
    (acquired,) = standby.named("lease.acquired")
    # both processes' own timestamps: the release to the take, far sooner than 60 s
    assert logged_at(acquired) - logged_at(released) < 5


def test_worker_stats_reports_lag_per_shard(start_worker: StartWorker) -> None:
    worker = start_worker()
    wait_until(lambda: worker.named("worker.stats"), timeout=15)
    stats = worker.named("worker.stats")[-1]
    assert {
        "records_per_s",
        "notifications_per_s",
        "retries",
        "dead_lettered",
        "checkpoints",
        "lag",
    } <= set(stats)
    wait_until(lambda: any(s["lag"] for s in worker.named("worker.stats")), timeout=10)
    lag = next(s["lag"] for s in worker.named("worker.stats") if s["lag"])
    for shard in lag.values():
        assert shard["lag_ms"] >= 0
        assert 0 < shard["trim_in_ms"] <= 24 * 3600 * 1000


def test_health_ready_and_metrics_endpoints_answer_on_a_running_worker(
    run_cli: RunCli, start_worker: StartWorker
) -> None:
    port = free_port()
    worker = start_worker(extra_env={"ORDERSTREAM_HTTP_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{base}/readyz")[0] == 200, timeout=15)
    assert _get(f"{base}/healthz") == (200, "ok\n")
    wait_until(lambda: len(worker.notifications()) == 3, timeout=15)

    delivered = 'orderstream_notifications_total{outcome="delivered",sink="log"} 3.0'
    wait_until(lambda: delivered in _get(f"{base}/metrics")[1])
    status, metrics = _get(f"{base}/metrics")
    assert status == 200
    assert "orderstream_records_read_total 5.0" in metrics  # two profiles, three orders
    assert "orderstream_shard_lag_seconds{shard_id=" in metrics

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def test_the_endpoints_bind_only_the_address_in_orderstream_http_host(
    start_worker: StartWorker,
) -> None:
    """127.0.0.2 is loopback too but another address: answering there and refusing
    127.0.0.1 shows the setting reached the socket (the default is every interface)."""
    port = free_port()
    worker = start_worker(
        extra_env={"ORDERSTREAM_HTTP_PORT": str(port), "ORDERSTREAM_HTTP_HOST": "127.0.0.2"}
    )
    wait_until(lambda: _get(f"http://127.0.0.2:{port}/healthz")[0] == 200, timeout=15)
    assert _get(f"http://127.0.0.1:{port}/healthz") == (0, "")  # connection refused
    (started,) = worker.named("worker.started")
    assert started["http_host"] == "127.0.0.2"
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""
