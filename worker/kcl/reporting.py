"""A record processor that tells `worker kcl run` how its shard is doing (status.py).

It wraps the real ShardProcessor and passes every amazon-kclpy callback on unchanged;
after each one it writes this process's status: whether it holds a lease, when KCL last
fetched records for it (an idle shard too, since the daemon is told to call
`processRecords` even for an empty fetch), the lag KCL reports, and the counters. Writes
are at most one a second, except when the lease changes hands.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from amazon_kclpy.v3.processor import RecordProcessorBase

from worker.core.stats import Stats
from worker.kcl import status

MIN_INTERVAL_S = 1.0


class ReportingProcessor(RecordProcessorBase):  # type: ignore[misc] # amazon_kclpy is untyped
    """Delegates to `inner`; reports to `folder` after each callback."""

    def __init__(
        self,
        *,
        inner: RecordProcessorBase,
        stats: Stats,
        folder: Path,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._stats = stats
        self._folder = folder
        self._clock = clock
        self._monotonic = monotonic
        self._status = status.ProcessorStatus(pid=os.getpid())
        self._last_write: float | None = None
        self._report(force=True)

    def initialize(self, initialize_input: Any) -> None:
        """Passed on; then report the shard and its lease held, at once."""
        self._inner.initialize(initialize_input)
        self._update(shard_id=str(initialize_input.shard_id), holds_lease=True)

    def process_records(self, process_records_input: Any) -> None:
        """Passed on; then the fetch time and KCL's lag (the first at once, then 1/s at most)."""
        self._inner.process_records(process_records_input)
        lag = process_records_input.millis_behind_latest
        first = self._status.fetched_at is None  # ready from the first fetch on: say so now
        self._update(
            force=first, fetched_at=self._clock(), lag_ms=None if lag is None else int(lag)
        )

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Passed on; then report the lease no longer held, at once."""
        self._inner.lease_lost(lease_lost_input)
        self._update(holds_lease=False)

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Passed on; the shard is done: report the lease no longer held, at once."""
        self._inner.shard_ended(shard_ended_input)
        self._update(holds_lease=False)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """Passed on; the lease is being handed over: report it no longer held, at once."""
        self._inner.shutdown_requested(shutdown_requested_input)
        self._update(holds_lease=False)

    def _update(self, force: bool = True, **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        self._report(force)

    def _report(self, force: bool) -> None:
        now = self._monotonic()
        if not force and self._last_write is not None and now - self._last_write < MIN_INTERVAL_S:
            return
        self._last_write = now
        with contextlib.suppress(OSError):  # the launcher's folder is gone: it is stopping
            status.write(self._folder, replace(self._status, counts=self._stats.counts()))
