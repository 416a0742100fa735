"""What a run leaves behind for the oracle: writes, attempts, durable effects, events.

Every entry carries `tick`, a counter that orders everything the run did (virtual time
alone has ties: many things happen at one instant), and `t`, the virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Written:
    """One stream record the writer produced (the truth the oracle compares against)."""

    tick: int
    t: float
    shard: str
    seq: int
    event_id: str
    order: tuple[str, str] | None  # (user, order) for an order item
    old: str | None
    new: str | None
    change: bool  # an order status change as docs/design.md section 5 defines it
    trimmed_at: float | None = None


@dataclass
class Attempt:
    """A delivery attempt, from the sink's side: who started it, when, for what."""

    tick: int
    t: float
    process: str
    term: int
    sink: str
    event_id: str
    order: str
    shard: str
    seq: int
    lane: bool = False  # made by the lane retrier (a parked change), not a shard reader
    end_tick: int | None = None
    end_t: float | None = None


@dataclass
class ProcessLife:
    """One simulated worker process from start to exit, crash or kill."""

    name: str
    replica: int
    started: float
    term: int = 0
    sigterm_tick: int | None = None
    sigterm_t: float | None = None
    end_tick: int | None = None
    end_t: float | None = None
    end: str | None = None  # "exit", "error", "crash", "overrun"
    error: str | None = None
    released_tick: int | None = None
    holds_lease_at_exit: bool = False


@dataclass
class Ledger:
    written: list[Written] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    durable: dict[tuple[str, str], int] = field(default_factory=dict)  # (sink, id) -> tick
    dead_letters: dict[tuple[str, int, str], int] = field(default_factory=dict)  # first write
    dead_reasons: dict[tuple[str, int, str], str] = field(default_factory=dict)  # its error
    # The retry lane, per (shard, seq, sink): the first park, and every stay in the lane
    # as [parked tick, removed tick or None] (removed: delivered, or moved to the DLQ).
    parked: dict[tuple[str, int, str], int] = field(default_factory=dict)
    lane_stays: dict[tuple[str, int, str], list[list[int | None]]] = field(default_factory=dict)
    checkpoints: list[tuple[int, float, str, int | None, str]] = field(default_factory=list)
    events: list[tuple[int, float, str, dict[str, Any]]] = field(default_factory=list)
    processes: dict[str, ProcessLife] = field(default_factory=dict)
    task_errors: list[tuple[float, str, str]] = field(default_factory=list)
    met_at: float | None = None  # the application's durable first meeting (STREAM# item)
    met_shards: frozenset[str] = frozenset()  # listed in it
    parents: dict[str, str] = field(default_factory=dict)  # child -> parent at the meeting
    born: dict[str, float] = field(default_factory=dict)  # shard -> when it was created
    parent_of: dict[str, str] = field(default_factory=dict)  # every split, child -> parent
    aged: set[str] = field(default_factory=set)  # shards that aged out of the stream
    final_items: list[dict[str, Any]] = field(default_factory=list)  # the state table at the end
    trace: list[tuple[Any, ...]] = field(default_factory=list)
    failure: str | None = None  # the run itself failed (deadlock, step budget)

    def of(self, name: str) -> ProcessLife:
        return self.processes[name]
