"""Counters and per-shard lag for the `worker.stats` event (thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

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


def delivered(counts: dict[str, int]) -> int:
    """Deliveries over every sink, from a `counts()` snapshot (keys `sent.<sink>`)."""
    return sum(value for key, value in counts.items() if key.startswith("sent."))


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._shards: dict[str, ShardLag] = {}
        # Child processes' latest snapshots (ORDERSTREAM_PROCESSES > 1), by child name.
        self._children: dict[str, tuple[dict[str, int], dict[str, ShardLag]]] = {}
        self._lane: dict[str, LaneGauge] = {}
        # Per-sink health, set by the guarded sinks: `breaker_open.<sink>`, `disabled.<sink>`.
        self._gauges: dict[str, int] = {}

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
        with self._lock:
            self._counts[name] += amount

    def set_gauge(self, name: str, value: int) -> None:
        with self._lock:
            self._gauges[name] = value

    def sinks(self) -> dict[str, dict[str, int]]:
        """Per guarded sink: breaker_open and disabled (1/0), refused (a counter), for
        `/metrics` and the `worker.stats` event alike."""
        with self._lock:
            gauges = dict(self._gauges)
        counts = self.counts()
        result: dict[str, dict[str, int]] = {}
        for key, value in gauges.items():
            kind, _, sink = key.partition(".")
            facts = result.setdefault(sink, {"breaker_open": 0, "disabled": 0, "refused": 0})
            facts[kind] = value
        for sink, facts in result.items():
            facts["refused"] = counts.get(f"refused.{sink}", 0)
        return result

    def counts(self) -> dict[str, int]:
        with self._lock:
            total = Counter(self._counts)
            for counts, _ in self._children.values():
                total.update(counts)
            return dict(total)

    def set_lane(self, gauges: dict[str, LaneGauge]) -> None:
        with self._lock:
            self._lane = dict(gauges)

    def lane(self) -> dict[str, LaneGauge]:
        """Per sink: parked changes, oldest age, next attempt (the lane retrier's view)."""
        with self._lock:
            return dict(self._lane)

    def shard(self, shard_id: str) -> ShardLag:
        with self._lock:
            return self._shards.setdefault(shard_id, ShardLag())

    def forget_shard(self, shard_id: str) -> None:
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
