"""Fleet mode's health: processors report through status files, the launcher sums them."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from worker.core.stats import Stats
from worker.kcl import status
from worker.kcl.leases import KclLease
from worker.kcl.monitor import FleetMonitor
from worker.ops.health import is_ready

pytest.importorskip("amazon_kclpy", reason="amazon-kclpy is installed by `make fleet`")

from worker.kcl.reporting import ReportingProcessor


class Inner:
    """The real processor's place: records what was passed on."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def initialize(self, _: Any) -> None:
        self.calls.append("initialize")

    def process_records(self, _: Any) -> None:
        self.calls.append("process_records")

    def lease_lost(self, _: Any) -> None:
        self.calls.append("lease_lost")

    def shard_ended(self, _: Any) -> None:
        self.calls.append("shard_ended")

    def shutdown_requested(self, _: Any) -> None:
        self.calls.append("shutdown_requested")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fetch(lag_ms: int = 0) -> SimpleNamespace:
    return SimpleNamespace(records=[], millis_behind_latest=lag_ms)


def test_a_processor_reports_its_lease_fetches_and_counts(tmp_path: Path) -> None:
    inner, stats, clock = Inner(), Stats(), Clock()
    processor = ReportingProcessor(
        inner=inner, stats=stats, folder=tmp_path, clock=clock, monotonic=clock
    )
    processor.initialize(SimpleNamespace(shard_id="shardId-1"))
    stats.add("records", 3)
    processor.process_records(fetch(lag_ms=1500))  # the first fetch is written at once
    (report,) = status.read_all(tmp_path)
    assert (report.shard_id, report.holds_lease, report.lag_ms) == ("shardId-1", True, 1500)
    assert report.fetched_at == clock.now
    assert report.counts == {"records": 3}

    stats.add("records", 2)
    processor.process_records(fetch())  # within a second: not written again
    assert status.read_all(tmp_path)[0].counts == {"records": 3}
    clock.now += 1.0
    processor.process_records(fetch())
    assert status.read_all(tmp_path)[0].counts == {"records": 5}

    processor.shutdown_requested(SimpleNamespace())  # a lease change is written at once
    assert status.read_all(tmp_path)[0].holds_lease is False
    assert inner.calls == ["initialize"] + ["process_records"] * 3 + ["shutdown_requested"]


def write(folder: Path, pid: int, **fields: Any) -> None:
    status.write(folder, status.ProcessorStatus(pid=pid, **fields))


def test_the_monitor_sums_counts_and_is_ready_while_a_fetched_lease_is_held(
    tmp_path: Path,
) -> None:
    stats, ready, live = Stats(), threading.Event(), {1, 2}
    monitor = FleetMonitor(
        folder=tmp_path,
        stats=stats,
        ready=ready,
        stop=threading.Event(),
        alive=lambda pid: pid in live,
    )
    monitor.refresh()
    assert not ready.is_set()  # no processor yet: alive, not ready

    write(tmp_path, 1, shard_id="s1", holds_lease=True, fetched_at=100.0, counts={"records": 4})
    write(tmp_path, 2, shard_id=None, counts={})
    with capture_logs() as logged:
        monitor.refresh()
        monitor.refresh()
    assert [e["event"] for e in logged] == ["kcl.ready"]  # once
    assert logged[0]["shard_id"] == "s1"
    assert ready.is_set()
    assert is_ready(stats, ready, now_s=110.0)
    assert not is_ready(stats, ready, now_s=200.0)  # not fetched for 100 s
    assert stats.counts() == {"records": 4}

    live.discard(1)  # the processor ended: its counts stay, its shard goes
    write(tmp_path, 3, shard_id="s1", holds_lease=True, fetched_at=300.0, counts={"records": 1})
    live.add(3)
    monitor.refresh()
    assert stats.counts() == {"records": 5}
    assert set(stats.lag(301.0)) == {"s1"}

    write(tmp_path, 3, shard_id="s1", holds_lease=False, fetched_at=300.0, counts={"records": 1})
    monitor.refresh()
    assert not ready.is_set()


def test_a_lease_knows_a_sequence_number_from_a_sentinel() -> None:
    numbered = KclLease(
        shard_id="s", owner="w", checkpoint="1100000000017454423013", parent_id=None
    )
    assert numbered.sequence_number == "1100000000017454423013"
    assert not numbered.finished
    horizon = KclLease(shard_id="s", owner=None, checkpoint="TRIM_HORIZON", parent_id=None)
    assert horizon.sequence_number is None
    assert KclLease(shard_id="s", owner=None, checkpoint="SHARD_END", parent_id=None).finished
