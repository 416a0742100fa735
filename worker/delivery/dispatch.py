"""Concurrent delivery with order per order id, retries, and the DLQ as the last stop.

A batch is split into groups by order; groups run in parallel (up to
ORDERSTREAM_CONCURRENCY per batch), while a group's changes go out one after another.
A slow or failing order delays only its own later changes. When every sink is local
(the log), the batch runs in the caller's thread: no hand-off.

With the retry lane on (a lane and a schedule given), a change the sink did not take in
its short burst, or that the sink's breaker refused, is parked durably instead, and the
order's later changes for that sink park behind it; the checkpoint may pass them all.
Only a change the receiver refused for good goes to the DLQ at once.

Deliveries belong to the caller's term: once its `stop` is set (SIGTERM, a lost
lease), no attempt starts, first or retry; what is in flight gets `stop_grace_s` to
finish, then is left unresolved for the next owner. Nothing is dead-lettered after a
stop: the next owner decides. Every sink is flushed before any checkpoint the caller
may write, progress checkpoints included.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from worker.core.detect import iso_utc
from worker.core.errors import DeliveryError, LeaseLostError, SinkUnavailableError
from worker.core.models import Notification, Outcome
from worker.core.rules import Rules
from worker.core.runtime import THREADS, Runtime, Signal
from worker.core.stats import Stats
from worker.delivery.lane import TooLargeToParkError
from worker.delivery.pullers import start_pullers
from worker.delivery.retrying import Attempts, RetryPolicy, call_with_retry
from worker.delivery.sinks import Paced, Sink, send_once
from worker.state.dlq import DeadLetter, HoldStore, entry_id
from worker.state.holds import HoldBook

log = structlog.get_logger()
Progress = Callable[[list[Outcome | None]], None]
BLOCKED = "held: an earlier change of this order was dead-lettered on this sink"
BEHIND = "parked behind an earlier change of this order for this sink"
BEHIND_LOOK_S = 1.0  # parks behind others, coalesced: the retrier looks within this
STOP_POLL_S = 0.1  # how soon a batch in flight notices its stop

_SEVERITY = [
    Outcome.FAILED,
    Outcome.DEAD_LETTERED,
    Outcome.PARKED,
    Outcome.DELIVERED,
    Outcome.DUPLICATE,
    Outcome.SKIPPED,
]


@dataclass
class _OrderRun:
    """One order's changes in a batch (their indexes, in sequence) and how far its
    delivery has come; held by one puller at a time."""

    indexes: list[int]
    next: int = 0

    def give_up(self, outcomes: list[Outcome | None]) -> None:
        """The changes not yet attempted stay undelivered (a failure or a stop)."""
        for index in self.indexes[self.next :]:
            outcomes[index] = Outcome.FAILED
        self.next = len(self.indexes)


def _worst(outcomes: Sequence[Outcome]) -> Outcome:
    return min(outcomes, key=_SEVERITY.index)


class SentRecently:
    """The (notification, sink) pairs this process delivered lately. A chunk retried in
    place (a change of it left unresolved: a breaker's refusal without a lane, the DLQ
    unreachable) does not send again what already went out, to any sink."""

    def __init__(self, *, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._keys: dict[tuple[str, str], None] = {}  # insertion order: oldest first
        self._lock = threading.Lock()

    def has(self, notification_id: str, sink: str) -> bool:
        """Whether this process delivered it to `sink` lately; read without the lock."""
        return (notification_id, sink) in self._keys

    def add_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Pairs delivered and flushed (a buffered line counts only once written)."""
        with self._lock:
            self._keys.update(dict.fromkeys(pairs))
            if len(self._keys) > self._capacity:
                for key in list(self._keys)[: self._capacity // 2]:
                    del self._keys[key]


class Dedup(Protocol):
    """What was delivered already, across restarts (worker.delivery.dedup.DedupStore)."""

    def seen(self, ids: Iterable[str]) -> set[str]:
        """The ids among `ids` recorded as delivered."""
        ...

    def remember(self, ids: Iterable[str]) -> None:
        """Record ids as delivered."""
        ...


class Parking(Protocol):
    """Where changes wait for their sink (worker.delivery.lane.LaneStore)."""

    def park(self, letter: DeadLetter, *, next_at_s: float) -> bool:
        """Park `letter` due at `next_at_s`, holding its order; False if already parked."""
        ...


@dataclass
class _Batch:
    """One dispatch call: its changes, their outcomes so far, its term and holds."""

    notifications: Sequence[Notification]
    seen: set[str]
    stop: Signal
    holds: HoldBook
    outcomes: list[Outcome | None] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (id, sink) delivered

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.notifications)


class Dispatcher:
    """Delivers a batch's notifications to every sink: in order per order id and
    sink, different orders in parallel, each retried, then parked or dead-lettered."""

    def __init__(
        self,
        *,
        sinks: Mapping[str, Sink],
        rules: Rules,
        policy: RetryPolicy,
        dlq: HoldStore | None,
        stats: Stats,
        concurrency: int = 32,
        dedup: Dedup | None = None,
        sleep: Callable[[float], None] | None = None,
        progress_every_s: float = 5.0,
        stop_grace_s: float = 10.0,
        runtime: Runtime = THREADS,
        lane: Parking | None = None,
        schedule: Sequence[float] = (),
        on_park: Callable[[float, str], None] | None = None,
    ) -> None:
        """`lane` and a non-empty `schedule` turn the retry lane on: the first wait of
        the schedule is how long a change parked after its burst waits; `on_park(due,
        sink)` tells the lane retrier when it is due."""
        self._sinks = sinks
        self._rules = rules
        self._policy = policy
        self._stats = stats
        self._stop_grace_s = stop_grace_s
        self._idle = runtime.event()  # a stop signal never set: for callers without one
        # Holds for callers that pass no book of their own (one stream: tests, redrive).
        self._holds = HoldBook(store=dlq, stream_arn="", monotonic=runtime.monotonic)
        self._dedup = dedup
        self._sleep = sleep
        self._runtime = runtime
        self._concurrency = concurrency
        self._lane = lane if schedule and dlq is not None else None
        self._first_wait_s = schedule[0] if schedule else 0.0
        self._on_park = on_park or (lambda _due_at_s, _sink: None)
        self._progress_every_s = progress_every_s
        # Local sinks (the log) return at once: their batches run in the caller's thread.
        self._inline = all(sink.local for sink in sinks.values())
        self._sent = SentRecently()
        # Asked once per sink here: isinstance against a runtime-checkable Protocol
        # walks its members each time (a tenth of a change's CPU in a backlog drain).
        self._paced = {name: isinstance(sink, Paced) for name, sink in sinks.items()}

    def _iso_now(self) -> str:
        return iso_utc(self._runtime.time())

    def dispatch(
        self,
        notifications: Sequence[Notification],
        progress: Progress | None = None,
        *,
        stop: Signal | None = None,
        holds: HoldBook | None = None,
    ) -> list[Outcome]:
        """Deliver a batch; the outcomes line up with `notifications`.

        While a batch is still in flight, `progress` is called every few seconds with
        the outcomes so far (None for pending), once the sinks have flushed them, so
        the caller can checkpoint the part that is done.
        """
        batch = _Batch(
            notifications=notifications,
            seen=self._seen(notifications),
            stop=stop or self._idle,
            holds=holds or self._holds,
        )
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, notification in enumerate(notifications):
            groups[(notification.user_id, notification.order_id)].append(index)
        if self._inline:
            for indexes in groups.values():
                order = _OrderRun(indexes)
                while self._step(batch, order):
                    pass
        else:
            self._run_pooled(batch, [_OrderRun(i) for i in groups.values()], progress)
        self._flush()  # before the caller checkpoints any of it
        self._sent.add_all(batch.sent)  # flushed: durable now, never to be sent again
        final = [outcome or Outcome.FAILED for outcome in batch.outcomes]
        if self._dedup:
            self._remember(
                [n.id for n, o in zip(notifications, final, strict=True) if o is Outcome.DELIVERED]
            )
        return final

    def _flush(self) -> None:
        for sink in self._sinks.values():
            sink.flush()

    def _run_pooled(
        self, batch: _Batch, orders: list[_OrderRun], progress: Progress | None
    ) -> None:
        """Up to `concurrency` pullers take one change of an order at a time, so a slow
        order holds one puller while the others move on, and no puller idles while an
        order has changes waiting."""
        pullers = start_pullers(
            runtime=self._runtime,
            name="deliver",
            items=orders,
            count=self._concurrency,
            work=lambda order: self._step(batch, order),
        )
        self._await(pullers.done, batch, progress)
        pullers.raise_first()

    def _await(self, all_done: Signal, batch: _Batch, progress: Progress | None) -> None:
        """Wait for the pullers: report progress every few seconds, and once stopped
        give what is in flight `stop_grace_s`, then leave it unresolved."""
        next_progress = self._runtime.monotonic() + self._progress_every_s
        stopped_at: float | None = None
        while not all_done.wait(STOP_POLL_S):
            now = self._runtime.monotonic()
            if batch.stop.is_set():
                stopped_at = now if stopped_at is None else stopped_at
                if now - stopped_at >= self._stop_grace_s:
                    log.warning("delivery.abandoned", in_flight=batch.outcomes.count(None))
                    return
            elif progress is not None and now >= next_progress:
                next_progress = now + self._progress_every_s
                done = list(batch.outcomes)  # taken before the flush: all of it is flushed
                self._flush()
                try:
                    progress(done)
                except BaseException:
                    batch.stop.set()  # the checkpoint was refused: this term is over
                    raise

    def _seen(self, notifications: Sequence[Notification]) -> set[str]:
        if self._dedup is None:
            return set()
        try:
            return self._dedup.seen(n.id for n in notifications)
        except Exception as exc:
            log.warning("dedup.read_failed", error=str(exc), ids=len(notifications))
            return set()

    def _remember(self, ids: list[str]) -> None:
        assert self._dedup is not None
        try:
            self._dedup.remember(ids)
        except Exception as exc:
            log.warning("dedup.write_failed", error=str(exc), ids=len(ids))

    def _step(self, batch: _Batch, order: _OrderRun) -> bool:
        """The order's next change; True while it has more. After a failure (or a
        stop) the rest of the order wait: FAILED, unsent."""
        if batch.stop.is_set():
            order.give_up(batch.outcomes)
            return False
        index = order.indexes[order.next]
        outcome = self._one(batch, batch.notifications[index])
        batch.outcomes[index] = outcome
        order.next += 1
        if outcome is Outcome.FAILED:
            order.give_up(batch.outcomes)
        return order.next < len(order.indexes)

    def _one(self, batch: _Batch, notification: Notification) -> Outcome:
        sinks = self._rules.sinks_for(notification.old_status, notification.new_status)
        if not sinks:
            self._stats.add("filtered")
            log.debug(
                "notification.filtered",
                order_id=notification.order_id,
                old_status=notification.old_status,
                new_status=notification.new_status,
            )
            return Outcome.SKIPPED
        if notification.id in batch.seen:
            self._stats.add("duplicates")
            log.info(
                "notification.duplicate",
                notification_id=notification.id,
                order_id=notification.order_id,
            )
            return Outcome.DUPLICATE
        return _worst([self._deliver(batch, notification, self._sinks[name]) for name in sinks])

    def _deliver(self, batch: _Batch, notification: Notification, sink: Sink) -> Outcome:
        context = {
            "sink": sink.name,
            "notification_id": notification.id,
            "order_id": notification.order_id,
            "shard_id": notification.shard_id,
        }
        gate = self._gate(batch, notification, sink, context)
        if gate is not None:
            return gate
        # A local sink answers at once: stamping the first attempt is only worth it for
        # remote ones (the log sink's rare failure is stamped when it is dead-lettered).
        first_at = None if sink.local else self._iso_now()
        started = self._runtime.monotonic()

        paced = self._paced[sink.name]

        def attempt() -> None:
            if paced and isinstance(sink, Paced) and not sink.pace(batch.stop):
                raise SinkUnavailableError(f"{sink.name}: stopped while waiting for its turn")
            send_once(sink, notification)

        result = call_with_retry(attempt, self._policy, batch.stop, context, self._sleep)
        if result.count > 1:
            self._stats.add("retries", result.count - 1)
        if result.error is None:
            batch.sent.append((notification.id, sink.name))
            self._stats.sent(sink.name)
            if not sink.local:  # a local sink's own output line is the record of it
                log.info(
                    "notification.sent",
                    attempt=result.count,
                    latency_ms=round((self._runtime.monotonic() - started) * 1000),
                    **context,
                )
            return Outcome.DELIVERED
        return self._undelivered(
            batch, notification, sink, result, context=context, first_at=first_at
        )

    def _undelivered(
        self,
        batch: _Batch,
        notification: Notification,
        sink: Sink,
        result: Attempts,
        *,
        context: dict[str, str],
        first_at: str | None,
    ) -> Outcome:
        """What becomes of a change its burst did not deliver."""
        assert result.error is not None
        if batch.stop.is_set():
            log.info("notification.interrupted", attempt=result.count, **context)
            return Outcome.FAILED  # not given up on: the next owner replays it, same id
        error = result.error
        if self._lane is not None and (error.transient or error.gone):
            attempts = 0 if isinstance(error, SinkUnavailableError) else result.count
            wait_s = self._first_wait_s
            return self._park(
                batch, notification, sink.name, error, attempts, context=context, wait_s=wait_s
            )
        if isinstance(error, SinkUnavailableError):
            # No lane (fleet mode, or the lane off): a sink out of reach is not the
            # change's fault. It stays unresolved and is retried in place, as before.
            log.warning("notification.refused", error=str(error), **context)
            return Outcome.FAILED
        return self._dead_letter(
            batch,
            notification,
            sink.name,
            result.error,
            result.count,
            context=context,
            first_at=first_at,
        )

    @staticmethod
    def _read_hold(
        batch: _Batch, notification: Notification, sink: Sink, context: dict[str, str]
    ) -> bool | None:
        """Whether the change's order is held for the sink; None when it must stay
        unresolved: stopped (before or while reading), or the holds unreadable."""
        if batch.stop.is_set():
            return None  # no new attempt once stopped
        try:
            held = batch.holds.is_held(notification, sink.name)
        except Exception as exc:
            log.error("dlq.read_failed", error=str(exc), **context)
            return None
        return None if batch.stop.is_set() else held

    def _gate(
        self, batch: _Batch, notification: Notification, sink: Sink, context: dict[str, str]
    ) -> Outcome | None:
        """What becomes of a change before any attempt: None lets it be attempted."""
        if self._sent.has(notification.id, sink.name):
            return Outcome.DELIVERED  # this process delivered it already (a retried chunk)
        held = self._read_hold(batch, notification, sink, context)
        if held is None:
            return Outcome.FAILED
        if not held:
            return None
        if self._lane is not None:
            error = DeliveryError(BEHIND, True)
            return self._park(batch, notification, sink.name, error, 0, context=context, wait_s=0.0)
        return self._dead_letter(
            batch, notification, sink.name, DeliveryError(BLOCKED, False), 0, context=context
        )

    def _letter(
        self,
        batch: _Batch,
        notification: Notification,
        sink: str,
        error: DeliveryError,
        attempts: int,
        *,
        first_at: str | None = None,
    ) -> DeadLetter:
        """The entry a change is dead-lettered or parked as: whole, keyed by stream."""
        now = self._iso_now()
        return DeadLetter(
            id=entry_id(notification.id, sink),
            sink=sink,
            error=str(error),
            attempts=attempts,
            first_attempt_at=first_at or now,
            last_attempt_at=now,
            shard_id=notification.shard_id,
            sequence_number=notification.sequence_number,
            order_id=notification.order_id,
            body=notification.body(),
            stream_arn=batch.holds.stream_arn,
            user_id=notification.user_id,
        )

    def _dead_letter(
        self,
        batch: _Batch,
        notification: Notification,
        sink: str,
        error: DeliveryError,
        attempts: int,
        *,
        context: dict[str, str],
        first_at: str | None = None,
    ) -> Outcome:
        letter = self._letter(batch, notification, sink, error, attempts, first_at=first_at)
        if not batch.holds.enabled:
            log.error("notification.failed", attempt=attempts, error=str(error), **context)
            return Outcome.FAILED
        try:
            fresh = batch.holds.put(letter)
        except Exception as exc:
            log.error("dlq.write_failed", error=str(exc), **context)
            return Outcome.FAILED
        if fresh:  # a replay finds it dead-lettered already: counted and logged once
            self._stats.dead_lettered(sink)
            log.error("notification.dead_lettered", attempt=attempts, error=str(error), **context)
        return Outcome.DEAD_LETTERED

    def _park(
        self,
        batch: _Batch,
        notification: Notification,
        sink: str,
        error: DeliveryError,
        attempts: int,
        *,
        context: dict[str, str],
        wait_s: float,
    ) -> Outcome:
        """Park the change in the retry lane, due in `wait_s` (0: as soon as the changes
        before it are through), and hold its order for the sink from now on."""
        assert self._lane is not None
        letter = self._letter(batch, notification, sink, error, attempts)
        due_at_s = self._runtime.time() + wait_s
        try:
            fresh = self._lane.park(letter, next_at_s=due_at_s)
        except TooLargeToParkError:
            return self._dead_letter(batch, notification, sink, error, attempts, context=context)
        except LeaseLostError:
            batch.stop.set()  # this term is over: the next owner replays the change
            log.error("lane.park_refused", error="the app lease is not ours", **context)
            return Outcome.FAILED
        except Exception as exc:
            log.error("lane.write_failed", error=str(exc), **context)
            return Outcome.FAILED
        assert letter.hold is not None
        batch.holds.note(letter.hold)
        if fresh:  # a replay finds it parked already: counted and logged once
            self._stats.parked(sink)
            log.warning("notification.parked", attempt=attempts, error=str(error), **context)
        # One parked behind another waits for it, not for a time; but the one before
        # may be gone already (a reader's holds are up to a minute old): look soon.
        self._on_park(due_at_s if wait_s > 0 else due_at_s + BEHIND_LOOK_S, sink)
        return Outcome.PARKED

    def close(self) -> None:
        """Close every sink (pools, buffered lines) at shutdown, after the last dispatch."""
        for sink in self._sinks.values():
            sink.close()
