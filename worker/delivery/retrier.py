"""The lane retrier: delivers parked changes on the long schedule, in order per order.

It runs in the lease holder, beside the shard readers, and every move it makes is
fenced by the lease (worker/delivery/lane.py). Each pass reads the lane and the holds, then for
every held (order, sink):

- behind a dead letter (the DLQ holds the order): its parked changes join the DLQ
  behind it, as they always did, for `worker dlq redrive` to send in order;
- otherwise the oldest parked change, once due, gets one attempt. Delivered: it leaves
  the lane and the next one goes at once. Failed: it waits for the schedule's next step,
  and holds the rest. The schedule exhausted, or refused for good by the receiver: it
  goes to the DLQ, its followers behind it.

A sink that refuses without an attempt (breaker open, disabled) costs no step: the
change keeps its turn for when the sink is back.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import structlog

from worker.core.detect import iso_utc
from worker.core.errors import DeliveryError, LeaseLostError, SinkUnavailableError
from worker.core.runtime import THREADS, Runtime, Signal
from worker.core.stats import LaneGauge, Stats
from worker.delivery.dispatch import BLOCKED
from worker.delivery.lane import HoldCount, Parked, summarize
from worker.delivery.pullers import start_pullers
from worker.delivery.sinks import Paced, Sink, send_once
from worker.state.dlq import DeadLetter, HoldKey, from_table

log = structlog.get_logger()
# A pass reads the whole lane, so it runs only when something may be due: at the next
# due time, on a park in this process, on a nudge (a park in a reader process, `worker
# lane retry`), and at least every FULL_POLL_S. Nudges are one small item, read every
# NUDGE_POLL_S.
FULL_POLL_S = 60.0
NUDGE_POLL_S = 5.0


class Lane(Protocol):
    """The retry lane as the retrier uses it (`LaneStore`): parked entries, their holds,
    and the moves an attempt ends in."""

    def entries(self, where: Callable[[Parked], bool] | None = None) -> Iterator[Parked]:
        """Every parked change in stream order (oldest first per order and sink), every page."""
        ...

    def holds(self) -> dict[HoldKey, HoldCount]:
        """Every held (order, sink), with its dead-letter and lane counts."""
        ...

    def nudges(self) -> int:
        """The nudge counter: a change since the last look is a park elsewhere, or an operator."""
        ...

    def delivered(self, entry: Parked) -> None:
        """The entry leaves the lane, with its share of the hold; fenced by the lease."""
        ...

    def reschedule(self, entry: Parked, *, error: str, at: str, next_at_s: float) -> None:
        """A failed attempt counted, its error kept and the entry's next turn set; fenced."""
        ...

    def to_dlq(self, entry: Parked, letter: DeadLetter) -> None:
        """The entry becomes `letter` in the DLQ, still holding its order; fenced."""
        ...


@runtime_checkable
class Reachable(Protocol):
    """A sink that knows when it would refuse every call (worker.delivery.sinks.guarded)."""

    def out_of_reach(self) -> bool:
        """True while every call would be refused (disabled, breaker open): no attempt is due."""
        ...


@dataclass(frozen=True)
class _Try:
    delivered: bool
    error: DeliveryError | None = None

    @property
    def refused(self) -> bool:
        """Not attempted, or the endpoint is gone: no step of the schedule is spent."""
        return isinstance(self.error, SinkUnavailableError) or bool(self.error and self.error.gone)


class LaneRetrier:
    """Retries parked changes in the background, each order's in order, so a sink's
    outage never stops the stream: only its own orders wait."""

    def __init__(
        self,
        *,
        lane: Lane,
        table: str,
        sinks: Mapping[str, Sink],
        schedule: Sequence[float],
        stats: Stats,
        runtime: Runtime = THREADS,
        concurrency: int = 8,
        poll_s: float = FULL_POLL_S,
        nudge_poll_s: float = NUDGE_POLL_S,
        lease_valid: Callable[[], bool] | None = None,
    ) -> None:
        """`table` is the orders table this worker reads: the lane's entries of another
        table under the same app name are that table's worker's to send.
        `lease_valid` says whether this term's lease still holds by the clock: no
        attempt starts once it may have passed to another owner (a process paused past
        its lease must not send what the new owner already delivered)."""
        if not schedule:
            raise ValueError("the lane needs a schedule")
        self._lane = lane
        self._table = table
        self._sinks = sinks
        self._schedule = tuple(schedule)
        self._stats = stats
        self._runtime = runtime
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._nudge_poll_s = nudge_poll_s
        self._lease_valid = lease_valid or (lambda: True)
        self._fresh_sinks: set[str] = set()  # sinks that parked since the last read
        self._last_full = -math.inf  # monotonic time of the last read of the lane
        self._wake = runtime.event()
        self._last_read: list[Parked] = []  # the lane as of the last read
        self._due_hint: float | None = None  # the earliest due time parked here since
        self._hint_lock = threading.Lock()

    def wake(self, due_at_s: float | None = None, sink: str | None = None) -> None:
        """Something was parked in this process for `sink`, due at `due_at_s` (wall
        clock; None: now): the next pass comes no later than that, and reads the lane."""
        with self._hint_lock:
            due = self._runtime.time() if due_at_s is None else due_at_s
            self._due_hint = due if self._due_hint is None else min(self._due_hint, due)
            if sink is not None:
                self._fresh_sinks.add(sink)
        self._wake.set()

    def _take_hint(self) -> float | None:
        with self._hint_lock:
            hint, self._due_hint = self._due_hint, None
            return hint

    def run(self, stop: Signal) -> None:
        """Pass after pass until `stop`; a lost lease sets `stop` (the term is over)."""
        nudges = self._read_nudges()
        force = True
        while not stop.is_set():
            self._wake.clear()
            force = force or self._runtime.monotonic() - self._last_full >= self._poll_s
            try:
                wait_s = self.pass_once(stop, force=force)
            except LeaseLostError:
                log.error("lane.lease_lost")
                stop.set()
                return
            except Exception as exc:
                log.warning("lane.pass_failed", error=str(exc))
                wait_s = self._nudge_poll_s
            if stop.is_set():
                return
            seen = self._wait(min(max(wait_s, 0.0), self._poll_s), stop, nudges)
            force = seen != nudges  # a reader process or an operator: read the lane
            nudges = seen

    def _wait(self, seconds: float, stop: Signal, nudges: int | None) -> int | None:
        """Until the next due change (a park here may bring it forward), a nudge, or
        the stop (checked every tenth of a second); returns the nudge count last seen."""
        deadline = self._runtime.monotonic() + seconds
        next_look = self._runtime.monotonic() + self._nudge_poll_s
        while not stop.is_set():
            hint = self._take_hint()
            if hint is not None:
                in_s = max(0.0, hint - self._runtime.time())
                deadline = min(deadline, self._runtime.monotonic() + in_s)
            now = self._runtime.monotonic()
            left = deadline - now
            if left <= 0:
                return nudges
            if self._wake.wait(min(left, 0.1)):
                self._wake.clear()
                continue
            if now >= next_look:
                next_look = now + self._nudge_poll_s
                seen = self._read_nudges()
                if seen != nudges:
                    return seen
        return nudges

    def _read_nudges(self) -> int | None:
        try:
            return self._lane.nudges()
        except Exception as exc:
            log.warning("lane.pass_failed", error=str(exc))
            return None

    def pass_once(self, stop: Signal, *, force: bool = False) -> float:
        """One look at the lane; returns the seconds until the next change is due.
        Unless `force`d (a nudge, a minute since the last read), the lane is not read
        while every sink with parked changes refuses every call."""
        if not force and self._last_read and self._all_out_of_reach():
            # Nothing could be sent: no need to read the lane. The gauges go on ageing
            # from the last read (a change parked since is counted at the next one).
            self._publish(self._last_read)
            return self._nudge_poll_s
        with self._hint_lock:
            self._fresh_sinks.clear()  # what parks from now on is not in this read
        self._last_full = self._runtime.monotonic()
        entries = list(self._lane.entries(self._ours))
        self._last_read = entries
        self._publish(entries)
        if not entries:
            return self._poll_s
        holds = self._lane.holds()
        by_key: dict[HoldKey, list[Parked]] = defaultdict(list)
        for entry in entries:  # in sequence order: oldest first per order and sink
            by_key[entry.hold].append(entry)
        now = self._runtime.time()
        next_due = now + self._poll_s
        due: deque[list[Parked]] = deque()
        for key, queue in by_key.items():
            if stop.is_set():
                break  # nothing moves after a stop, to the DLQ least of all
            if holds.get(key, HoldCount(0, 0)).dead > 0:
                self._follow_to_dlq(queue, BLOCKED)
            elif queue[0].next_at_s <= now:
                due.append(queue)
            else:
                next_due = min(next_due, queue[0].next_at_s)
        turns: list[float] = []  # when the queues attempted now want their next look
        if due and self._run_pooled(due, stop, turns):
            return 0.0  # delivered some: look again at once, more may be due now
        return min([next_due, *turns]) - now

    def _ours(self, entry: Parked) -> bool:
        return from_table(entry.letter.stream_arn, self._table)

    def _all_out_of_reach(self) -> bool:
        """Every sink with parked changes (as of the last read, and those that parked
        since) refuses every call now: during an outage the lane is read once per
        minute, or when a nudge comes, not every pass."""
        with self._hint_lock:
            fresh = set(self._fresh_sinks)
        waiting = {entry.letter.sink for entry in self._last_read} | fresh
        sinks = [self._sinks.get(name) for name in sorted(waiting)]
        return bool(sinks) and all(
            isinstance(sink, Reachable) and sink.out_of_reach() for sink in sinks
        )

    def _run_pooled(self, due: deque[list[Parked]], stop: Signal, turns: list[float]) -> bool:
        """Drain the due (order, sink) queues, `concurrency` at a time; True if any
        change was delivered. `turns` gets each queue's next due time."""
        progress: list[bool] = []

        def drain(queue: list[Parked]) -> None:
            try:
                if self._drain(queue, stop, turns):
                    progress.append(True)
            except LeaseLostError:
                stop.set()  # the other pullers start nothing more either
                raise

        pullers = start_pullers(
            runtime=self._runtime,
            name="lane",
            items=due,
            count=self._concurrency,
            work=drain,
            stop=stop,
        )
        pullers.done.wait()
        pullers.raise_first()
        return bool(progress)

    def _drain(self, queue: list[Parked], stop: Signal, turns: list[float]) -> bool:
        """One (order, sink): attempt the oldest; while delivered, the next at once.
        True if one was delivered; a failed or refused one adds its next turn."""
        delivered = False
        for index, entry in enumerate(queue):
            if stop.is_set() or entry.next_at_s > self._runtime.time():
                return delivered
            if not self._lease_valid():
                log.error("lane.lease_lost")
                stop.set()  # this term's lease may be another's by now: send nothing
                return delivered
            outcome = self._attempt(entry, stop)
            if outcome.delivered:
                self._lane.delivered(entry)
                self._stats.sent(entry.letter.sink)
                log.info("lane.delivered", **_context(entry))
                delivered = True
                continue
            assert outcome.error is not None
            if outcome.refused or stop.is_set():
                # The sink is out of reach: the change keeps its turn, looked at again soon.
                turns.append(self._runtime.time() + self._nudge_poll_s)
                return delivered
            if outcome.error.transient and entry.tries + 1 < len(self._schedule):
                wait_s = self._schedule[entry.tries + 1]
                turns.append(self._runtime.time() + wait_s)
                self._lane.reschedule(
                    entry,
                    error=str(outcome.error),
                    at=iso_utc(self._runtime.time()),
                    next_at_s=self._runtime.time() + wait_s,
                )
                log.warning(
                    "lane.retry_failed",
                    error=str(outcome.error),
                    tries=entry.tries + 1,
                    next_in_s=wait_s,
                    **_context(entry),
                )
                return delivered
            self._give_up(entry, outcome.error)
            self._follow_to_dlq(queue[index + 1 :], BLOCKED)
            return delivered
        return delivered

    def _attempt(self, entry: Parked, stop: Signal) -> _Try:
        sink = self._sinks.get(entry.letter.sink)
        if sink is None:
            error = SinkUnavailableError(f"sink {entry.letter.sink!r} is not configured here")
            return _Try(False, error)
        try:
            if isinstance(sink, Paced) and not sink.pace(stop):
                raise SinkUnavailableError(f"{sink.name}: stopped before its turn")
            send_once(sink, entry.letter.notification())
            sink.flush()  # durable (the log sink's line out) before the entry goes
        except DeliveryError as exc:
            return _Try(False, exc)
        return _Try(True)

    def _give_up(self, entry: Parked, error: DeliveryError) -> None:
        now = iso_utc(self._runtime.time())
        letter = replace(
            entry.letter,
            error=str(error),
            attempts=entry.letter.attempts + 1,
            last_attempt_at=now,
        )
        self._lane.to_dlq(entry, letter)
        self._stats.dead_lettered(letter.sink)
        log.error(
            "notification.dead_lettered",
            attempt=letter.attempts,
            error=str(error),
            lane_tries=entry.tries + 1,
            **_context(entry),
        )

    def _follow_to_dlq(self, followers: Sequence[Parked], reason: str) -> None:
        """Changes parked behind one that went to the DLQ join it there, in order."""
        for entry in followers:
            self._lane.to_dlq(entry, replace(entry.letter, error=reason))
            self._stats.dead_lettered(entry.letter.sink)
            log.error("notification.dead_lettered", attempt=0, error=reason, **_context(entry))

    def _publish(self, entries: Sequence[Parked]) -> None:
        """Parked count, oldest age and next attempt per sink, for stats and /metrics."""
        gauges = {name: LaneGauge(0, 0.0, None) for name in self._sinks}
        gauges.update(summarize(entries, self._runtime.time()))
        self._stats.set_lane(gauges)


def _context(entry: Parked) -> dict[str, str]:
    letter = entry.letter
    return {
        "sink": letter.sink,
        "notification_id": letter.id.rsplit(".", 1)[0],
        "order_id": letter.order_id or "",
        "shard_id": letter.shard_id,
    }
