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
    caught_up: bool = False  # the last read returned nothing


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._shards: dict[str, ShardLag] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

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
