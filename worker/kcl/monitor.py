"""The fleet worker's view of its processors, for `/healthz`, `/readyz` and `/metrics`.

Every second it reads the processors' status files (status.py) into one `Stats`, the
same object the poller's HTTP endpoints read: counters summed over every processor this
launcher has run (a finished one keeps its last counts), and per-shard lag and last
fetch for the live ones holding a lease. `ready` is set while at least one lease is
held; `/readyz` then also wants every such shard fetched within 30 s. The first lease
taken is logged once, as `kcl.ready`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from worker.core.stats import ShardLag, Stats
from worker.kcl import status

log = structlog.get_logger()
INTERVAL_S = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process reuses the pid: not ours any more
        return False
    return True


def _shard_lag(report: status.ProcessorStatus) -> ShardLag:
    fetched = report.fetched_at or 0.0
    oldest = fetched - report.lag_ms / 1000 if report.lag_ms and report.fetched_at else None
    return ShardLag(oldest_uncheckpointed_s=oldest, last_read_s=fetched)


class FleetMonitor:
    """Keeps `stats` and `ready` up to date from `folder` until `stop` is set."""

    def __init__(
        self,
        *,
        folder: Path,
        stats: Stats,
        ready: threading.Event,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
        alive: Callable[[int], bool] = _alive,
    ) -> None:
        self._folder = folder
        self._stats = stats
        self._ready = ready
        self._stop = stop
        self._monotonic = monotonic
        self._alive = alive
        self._started = monotonic()
        self._announced = False
        self._thread = threading.Thread(target=self._run, name="fleet-monitor", daemon=True)

    def start(self) -> None:
        """Refresh every second on a daemon thread until `stop` is set."""
        self._thread.start()

    def join(self) -> None:
        """Once `stop` is set: wait (at most 5 s) for a refresh in progress to end."""
        self._thread.join(timeout=5)

    def refresh(self) -> None:
        """Read every status file once: counters, lag of the live lease holders, `ready`."""
        holding: list[str] = []
        for report in status.read_all(self._folder):
            live = report.holds_lease and report.shard_id and self._alive(report.pid)
            shards = {str(report.shard_id): _shard_lag(report)} if live else {}
            self._stats.absorb(str(report.pid), report.counts, shards)
            holding += shards
        if holding:
            self._ready.set()
        else:
            self._ready.clear()
        if holding and not self._announced:
            self._announced = True
            after_ms = round((self._monotonic() - self._started) * 1000)
            log.info("kcl.ready", shard_id=sorted(holding)[0], after_ms=after_ms)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self.refresh()
