"""Fleet mode end to end: `worker kcl run` with the real KCL MultiLangDaemon (Java) over
the DynamoDB Streams adapter, against the moto server, as a user runs it.

KCL is slow to start on a new application (tables, leader election, lease assignment:
15-40 s here), so these use short failover and assignment intervals. Failover after a
kill -9 can take ~2.5 minutes: when the dead worker was KCL's leader, its leader lock
(hard-coded at 2 minutes) must expire before anyone assigns its lease.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import MotoServer, free_port, wait_until
from tests.fakes.processes import ScriptProcess

pytestmark = [
    pytest.mark.kcl,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("java") and shutil.which("mvn")),
        reason="fleet mode needs java and mvn (`make fleet` builds kcl/ with them)",
    ),
]

SEED_CHANGES = {
    ("ORD1001", None, "Shipped"),
    ("ORD1002", None, "Processing"),
    ("ORD1003", None, "Delivered"),
}
RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]


def kcl_env() -> dict[str, str]:
    return {
        "ORDERSTREAM_APP": f"kcl-{uuid.uuid4().hex[:8]}",
        "ORDERSTREAM_KCL_FAILOVER_MS": "3000",
        "ORDERSTREAM_KCL_ASSIGNMENT_MS": "1000",
        "ORDERSTREAM_KCL_PARENT_POLL_MS": "1000",
        "ORDERSTREAM_IDLE_WAIT_MS": "250",
        "ORDERSTREAM_STATS_INTERVAL_S": "30",
    }


def changes(*workers: ScriptProcess) -> set[tuple[str, str | None, str]]:
    return {
        (n["order_id"], n["old_status"], n["new_status"])
        for worker in workers
        for n in worker.notifications()
    }


def dynamodb(moto: MotoServer) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1")


def lease_owner(moto: MotoServer, app: str) -> str | None:
    """The one shard's lease owner in KCL's lease table (named after the application)."""
    try:
        items = dynamodb(moto).scan(TableName=app)["Items"]
    except dynamodb(moto).exceptions.ResourceNotFoundException:
        return None
    owners = [item["leaseOwner"]["S"] for item in items if "leaseOwner" in item]
    return owners[0] if len(owners) == 1 else None


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def worker_id(worker: ScriptProcess) -> str | None:
    started = worker.named("kcl.started")
    return str(started[0]["worker_id"]) if started else None


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(port: int, name: str) -> float:
    _, text = http_get(port, "/metrics")
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(values[0]) if values else -1.0


@pytest.mark.timeout(300)
def test_kcl_run_turns_writes_into_notifications(
    seeded: None, start_worker: StartWorker, run_cli: RunCli, moto_server: MotoServer
) -> None:
    env = kcl_env()
    app = env["ORDERSTREAM_APP"]
    port = free_port()
    started = time.monotonic()
    worker = start_worker("kcl", "run", extra_env={**env, "ORDERSTREAM_HTTP_PORT": str(port)})
    wait_until(lambda: worker.named("kcl.daemon.started"), timeout=30)
    assert http_get(port, "/healthz") == (200, "ok\n")  # alive while KCL starts...
    assert http_get(port, "/readyz")[0] == 503  # ...but holding no lease yet

    wait_until(lambda: changes(worker) >= SEED_CHANGES, timeout=180, interval=0.2)
    # Before the first notification: one `kcl.ready`, and only KCL lines that matter.
    (ready,) = worker.named("kcl.ready")
    assert ready["shard_id"].startswith("shardId-")
    first = worker.snapshot().index(worker.notifications()[0])
    daemon_info = [
        e for e in worker.snapshot()[:first] if e["event"] == "kcl.daemon" and e["level"] == "info"
    ]
    assert len(daemon_info) <= 12, [e["message"] for e in daemon_info]
    first_batch_s = time.monotonic() - started
    written = time.monotonic()
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped", "--expect", "Processing")
    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in changes(worker), timeout=30)
    print(
        f"first batch after {first_batch_s:.1f}s, a write after {time.monotonic() - written:.1f}s"
    )

    # Every notification carries the whole body; stdout is JSON events only.
    (shipped,) = [
        n
        for n in worker.notifications()
        if n["new_status"] == "Shipped" and n["order_id"] == "ORD1002"
    ]
    assert shipped["type"] == "order.status_changed"
    assert shipped["user_id"] == "USR001"
    assert shipped["amount"] == "30"
    assert shipped["shard_id"].startswith("shardId-")
    assert worker.other_lines == []
    assert worker.named("kcl.daemon")  # the daemon's own lines, re-emitted
    assert not [e for e in worker.named("kcl.daemon") if e["level"] == "error"]

    # KCL's own tables, named after the application.
    tables = set(dynamodb(moto_server).list_tables()["TableNames"])
    assert {app, f"{app}-CoordinatorState", f"{app}-WorkerMetricStats"} <= tables
    assert lease_owner(moto_server, app) == worker_id(worker)

    # The poller's endpoints, served by the fleet worker from its processors' reports.
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=15)
    wait_until(lambda: metric(port, "orderstream_records_read_total") >= 4, timeout=15)
    _, metrics = http_get(port, "/metrics")
    assert f'orderstream_shard_lag_seconds{{shard_id="{shipped["shard_id"]}"}}' in metrics
    assert 'orderstream_notifications_total{outcome="delivered",sink="log"}' in metrics

    # `worker status` reads KCL's lease table: the shard's owner and checkpoint.
    status = run_cli("worker", "status", "--json", extra_env={"ORDERSTREAM_APP": app})
    (row,) = [json.loads(line) for line in status.stdout.splitlines()]
    assert row["shard_id"] == shipped["shard_id"]
    assert row["owner"] == worker_id(worker)
    assert row["checkpoint"] == shipped["sequence_number"]
    assert row["lag_ms"] == 0

    # SIGTERM: graceful shutdown through the daemon, exit 0, the checkpoint in place.
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    (stopped,) = worker.named("kcl.stopped")
    assert stopped == {**stopped, "graceful": True, "exit_code": 0}
    assert "daemon_exit_code" not in stopped  # no 143 next to graceful
    assert worker.named("kcl.shard.shutdown")
    (lease,) = dynamodb(moto_server).scan(TableName=app)["Items"]
    assert lease["checkpoint"]["S"] == shipped["sequence_number"]
    daemon_pid = worker.named("kcl.daemon.started")[0]["pid"]
    assert not alive(daemon_pid)

    # A restart says whose lease it waits for (KCL 3 keeps a stopped owner on the lease).
    again = start_worker("kcl", "run", extra_env=env)
    wait_until(lambda: again.named("kcl.daemon.started"), timeout=30)
    (waiting,) = again.named("kcl.waiting")
    assert waiting["owners"] == [worker_id(worker)]
    assert (waiting["failover_ms"], waiting["assignment_ms"]) == (3000, 1000)
    again.signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0


@pytest.mark.timeout(480)
def test_a_killed_lease_holder_is_replaced_and_nothing_is_lost(
    seeded: None, start_worker: StartWorker, run_cli: RunCli, moto_server: MotoServer
) -> None:
    env = kcl_env()
    app = env["ORDERSTREAM_APP"]
    workers = [start_worker("kcl", "run", extra_env=env) for _ in range(2)]

    wait_until(lambda: changes(*workers) >= SEED_CHANGES, timeout=180, interval=0.2)
    wait_until(lambda: lease_owner(moto_server, app) is not None, timeout=30, interval=0.2)
    owner = lease_owner(moto_server, app)
    (holder,) = [w for w in workers if worker_id(w) == owner]
    (other,) = [w for w in workers if w is not holder]
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")
    wait_until(lambda: ("ORD1002", "Processing", "Shipped") in changes(holder), timeout=30)

    # kill -9 of `worker kcl run`: its daemon and the shard's processor go with it.
    daemon_pid = holder.named("kcl.daemon.started")[0]["pid"]
    processor_pid = holder.named("kcl.processor.started")[-1]["pid"]
    holder.kill()
    killed = time.monotonic()
    wait_until(lambda: not alive(daemon_pid) and not alive(processor_pid), timeout=15)
    # What a kill -9 leaves behind: the launcher's folder of generated files.
    shutil.rmtree(Path(holder.named("kcl.started")[0]["properties"]).parent)

    # Changes made while nobody holds the lease are delivered by the other worker.
    run_cli("writer", "put-order", "USR002", "ORD2001", "--amount", "5")
    run_cli("writer", "set-status", "USR002", "ORD2001", "Processing")
    wait_until(
        lambda: ("ORD2001", "Pending", "Processing") in changes(other), timeout=360, interval=0.5
    )
    print(f"failover: the other worker delivered {time.monotonic() - killed:.0f}s after kill -9")

    assert lease_owner(moto_server, app) == worker_id(other)
    expected = SEED_CHANGES | {
        ("ORD1002", "Processing", "Shipped"),
        ("ORD2001", None, "Pending"),
        ("ORD2001", "Pending", "Processing"),
    }
    assert expected <= changes(*workers)  # every change at least once
    other.signal(signal.SIGTERM)
    assert other.wait(timeout=30) == 0
