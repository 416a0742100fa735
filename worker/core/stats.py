"""Counters and per-shard lag for the `worker.stats` event (thread-safe)."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields

TRIM_HORIZON_S = 24 * 3600  # DynamoDB Streams keeps records for 24 hours


@dataclass
class ShardLag:
    """Age facts for one shard, in epoch seconds."""

    oldest_uncheckpointed_s: float | None = None  # first record not yet checkpointed
    last_read_s: float = 0.0  # when GetRecords last answered


@dataclass(frozen=True)
class LaneGauge:
    """One sink's share of the retry lane, as of the retrier's last pass."""

    parked: int
    oldest_age_s: float  # how long the oldest parked change has waited (0: none)
    next_at_s: float | None  # wall clock of the next attempt due (None: nothing parked)


@dataclass(frozen=True)
class SinkCounts:
    """One sink's counters, this process's and its children's together. A sink is
    listed once it has counted something, and then only what it counted is non-zero."""

    sent: int = 0
    dead_lettered: int = 0
    parked: int = 0
    refused: int = 0  # calls refused without an attempt (breaker open, sink disabled)


_SINK_COUNTERS = frozenset(f.name for f in fields(SinkCounts))


@functools.cache
def _sink_key(counter: str, sink: str) -> str:
    """The flat key a per-sink counter travels under in a `counts()` snapshot (to a
    parent process, in a KCL status file): `sent.webhook`. Cached: `sent` is counted
    once per delivery."""
    return f"{counter}.{sink}"


def sink_counts(counts: Mapping[str, int]) -> dict[str, SinkCounts]:
    """Per-sink counters from a `counts()` snapshot: the one reader of the flat keys."""
    found: dict[str, dict[str, int]] = {}
    for key, value in counts.items():
        counter, _, sink = key.partition(".")
        if sink and counter in _SINK_COUNTERS:
            found.setdefault(sink, {})[counter] = value
    return {sink: SinkCounts(**values) for sink, values in found.items()}


def delivered(counts: Mapping[str, int]) -> int:
    """Deliveries over every sink, from a `counts()` snapshot."""
    return sum(sink.sent for sink in sink_counts(counts).values())


@dataclass
class _Guard:
    """A guarded sink's health gauges, 1 or 0, as its GuardedSink last set them."""

    breaker_open: int = 0
    disabled: int = 0


class Stats:
    """The worker's counters and gauges, written by every thread and read by the
    `worker.stats` event and `/metrics` alike, so both show the same numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._shards: dict[str, ShardLag] = {}
        # Child processes' latest snapshots (ORDERSTREAM_PROCESSES > 1), by child name.
        self._children: dict[str, tuple[dict[str, int], dict[str, ShardLag]]] = {}
        self._lane: dict[str, LaneGauge] = {}
        # Per-sink health, set by the guarded sinks (in the order they were built).
        self._guards: dict[str, _Guard] = {}

    def totals(self) -> dict[str, int]:
        """The running totals every summary event carries (`worker.stopped`, `kcl.*`)."""
        counts = self.counts()
        return {
            "records": counts.get("records", 0),
            "notifications": delivered(counts),
            "dead_lettered": counts.get("dead_lettered", 0),
            "checkpoints": counts.get("checkpoints", 0),
        }

    def snapshot(self) -> tuple[dict[str, int], dict[str, ShardLag]]:
        """This process's own counters and shard facts, for a parent process."""
        with self._lock:
            lags = {
                k: ShardLag(v.oldest_uncheckpointed_s, v.last_read_s)
                for k, v in self._shards.items()
            }
            return dict(self._counts), lags

    def absorb(self, child: str, counts: dict[str, int], shards: dict[str, ShardLag]) -> None:
        """Replace a child's snapshot: its counters and shards count as ours."""
        with self._lock:
            self._children[child] = (counts, shards)

    def retire(self, child: str) -> None:
        """A child ended: keep its counts (totals stay monotonic), drop its shards."""
        with self._lock:
            counts, _ = self._children.pop(child, ({}, {}))
            self._counts.update(counts)

    def add(self, name: str, amount: int = 1) -> None:
        """Count a process-wide event (`records`, `retries`, `checkpoints`...); per-sink
        events have their own methods below."""
        with self._lock:
            self._counts[name] += amount

    def sent(self, sink: str) -> None:
        """One notification delivered to `sink`."""
        self.add(_sink_key("sent", sink))

    def dead_lettered(self, sink: str) -> None:
        """One notification for `sink` dead-lettered: counted for the sink and overall."""
        with self._lock:
            self._counts["dead_lettered"] += 1
            self._counts[_sink_key("dead_lettered", sink)] += 1

    def parked(self, sink: str) -> None:
        """One change for `sink` parked in the retry lane: for the sink and overall."""
        with self._lock:
            self._counts["parked"] += 1
            self._counts[_sink_key("parked", sink)] += 1

    def refused(self, sink: str) -> None:
        """One call to `sink` refused without an attempt (breaker open, sink disabled)."""
        self.add(_sink_key("refused", sink))

    def set_breaker_open(self, sink: str, is_open: bool) -> None:
        """The sink's breaker opened (or is half-open): True, closed again: False."""
        with self._lock:
            self._guards.setdefault(sink, _Guard()).breaker_open = int(is_open)

    def set_disabled(self, sink: str, disabled: bool) -> None:
        """The sink was disabled (410 Gone) or enabled again."""
        with self._lock:
            self._guards.setdefault(sink, _Guard()).disabled = int(disabled)

    def per_sink(self) -> dict[str, SinkCounts]:
        """Every sink's counters, children included."""
        return sink_counts(self.counts())

    def sinks(self) -> dict[str, dict[str, int]]:
        """Per guarded sink: breaker_open and disabled (1/0), refused (a counter), for
        `/metrics` and the `worker.stats` event alike."""
        with self._lock:
            guards = {sink: (g.breaker_open, g.disabled) for sink, g in self._guards.items()}
        counts = self.per_sink()
        return {
            sink: {
                "breaker_open": breaker_open,
                "disabled": disabled,
                "refused": counts.get(sink, SinkCounts()).refused,
            }
            for sink, (breaker_open, disabled) in guards.items()
        }

    def counts(self) -> dict[str, int]:
        """Every counter, children included: the snapshot a parent process absorbs."""
        with self._lock:
            total = Counter(self._counts)
            for counts, _ in self._children.values():
                total.update(counts)
            return dict(total)

    def set_lane(self, gauges: dict[str, LaneGauge]) -> None:
        """The lane retrier's latest view, replaced whole after each pass."""
        with self._lock:
            self._lane = dict(gauges)

    def lane(self) -> dict[str, LaneGauge]:
        """Per sink: parked changes, oldest age, next attempt (the lane retrier's view)."""
        with self._lock:
            return dict(self._lane)

    def shard(self, shard_id: str) -> ShardLag:
        """The shard's lag facts, created on first use; the reader updates them in place."""
        with self._lock:
            return self._shards.setdefault(shard_id, ShardLag())

    def forget_shard(self, shard_id: str) -> None:
        """This process no longer reads the shard (read out, stopped, handed over): a
        stale entry would report its lag, and fire lag alarms, forever."""
        with self._lock:
            self._shards.pop(shard_id, None)

    def lag(self, now_s: float) -> dict[str, dict[str, int]]:
        """Per shard: lag_ms (age of the oldest record not yet checkpointed, 0 when caught
        up) and trim_in_ms (time before the 24 h trim reaches that record)."""
        with self._lock:
            shards = dict(self._shards)
            for _, child_shards in self._children.values():
                shards.update(child_shards)
        result: dict[str, dict[str, int]] = {}
        for shard_id, lag in shards.items():
            oldest = lag.oldest_uncheckpointed_s
            age = 0.0 if oldest is None else max(0.0, now_s - oldest)
            result[shard_id] = {
                "lag_ms": round(age * 1000),
                "trim_in_ms": round((TRIM_HORIZON_S - age) * 1000),
                "last_read_ms_ago": round(max(0.0, now_s - lag.last_read_s) * 1000),
            }
        return result
