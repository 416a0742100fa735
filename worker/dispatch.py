"""Concurrent delivery with order per order id, retries, and the DLQ as the last stop.

A batch is split into groups by order; groups run in parallel on one bounded pool
(ORDERSTREAM_CONCURRENCY in flight across all shards), while a group's changes go out
one after another. A slow or failing order delays only its own later changes. When
every sink is local (the log), the batch runs in the caller's thread: no pool hand-off.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence

import structlog

from worker.dedup import DedupStore
from worker.detect import iso_utc
from worker.dlq import DeadLetter, DeadLetterStore, entry_id
from worker.errors import DeliveryError
from worker.models import Notification, Outcome
from worker.retrying import RetryPolicy, call_with_retry
from worker.rules import Rules
from worker.runtime import THREADS, Runtime, Signal
from worker.sinks import Sink
from worker.stats import Stats

log = structlog.get_logger()
Progress = Callable[[list[Outcome | None]], None]
BLOCKED = "an earlier change of this order was dead-lettered on this sink"

_SEVERITY = [
    Outcome.FAILED,
    Outcome.DEAD_LETTERED,
    Outcome.DELIVERED,
    Outcome.DUPLICATE,
    Outcome.SKIPPED,
]


def _worst(outcomes: Sequence[Outcome]) -> Outcome:
    return min(outcomes, key=_SEVERITY.index)


class Dispatcher:
    def __init__(
        self,
        *,
        sinks: Mapping[str, Sink],
        rules: Rules,
        policy: RetryPolicy,
        dlq: DeadLetterStore | None,
        stop: Signal,
        stats: Stats,
        concurrency: int = 32,
        dedup: DedupStore | None = None,
        sleep: Callable[[float], None] | None = None,
        progress_every_s: float = 5.0,
        runtime: Runtime = THREADS,
    ) -> None:
        self._sinks = sinks
        self._rules = rules
        self._policy = policy
        self._dlq = dlq
        self._stop = stop
        self._stats = stats
        self._dedup = dedup
        self._sleep = sleep
        self._runtime = runtime
        self._sent_counter = {name: f"sent.{name}" for name in sinks}
        self._concurrency = concurrency
        self._progress_every_s = progress_every_s
        # Local sinks (the log) return at once: their batches run in the caller's thread.
        self._inline = all(sink.local for sink in sinks.values())

    def _iso_now(self) -> str:
        return iso_utc(self._runtime.time())

    def dispatch(
        self,
        notifications: Sequence[Notification],
        progress: Progress | None = None,
    ) -> list[Outcome]:
        """Deliver a batch; the outcomes line up with `notifications`.

        While a batch is still in flight, `progress` is called every few seconds with
        the outcomes so far (None for pending), so the caller can checkpoint the part
        that is done.
        """
        seen = self._seen(notifications)
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, notification in enumerate(notifications):
            groups[(notification.user_id, notification.order_id)].append(index)
        outcomes: list[Outcome | None] = [None] * len(notifications)
        if self._inline:
            for indexes in groups.values():
                self._run_group(notifications, indexes, seen, outcomes)
        else:
            self._run_pooled(notifications, list(groups.values()), seen, outcomes, progress)
        for sink in self._sinks.values():
            sink.flush()  # before the caller checkpoints any of it
        final = [outcome or Outcome.FAILED for outcome in outcomes]
        if self._dedup:
            self._remember(
                [n.id for n, o in zip(notifications, final, strict=True) if o is Outcome.DELIVERED]
            )
        return final

    def _run_pooled(
        self,
        notifications: Sequence[Notification],
        groups: list[list[int]],
        seen: set[str],
        outcomes: list[Outcome | None],
        progress: Progress | None,
    ) -> None:
        """Up to `concurrency` pullers take whole orders from one queue until it is empty,
        so a slow order holds one puller while the others move on."""
        queue = deque(groups)
        lock = threading.Lock()
        pullers = min(self._concurrency, len(groups))
        running = [pullers]
        all_done = self._runtime.event()
        errors: list[BaseException] = []

        def puller() -> None:
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        indexes = queue.popleft()
                    self._run_group(notifications, indexes, seen, outcomes)
            except Exception as exc:
                errors.append(exc)
            finally:
                with lock:
                    running[0] -= 1
                    if running[0] == 0:
                        all_done.set()

        for number in range(pullers):
            self._runtime.spawn(f"deliver-{number}", puller)
        while not all_done.wait(self._progress_every_s):
            if progress is not None:
                progress(list(outcomes))
        if errors:
            raise errors[0]  # a bug in a puller surfaces here, not silently

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

    def _run_group(
        self,
        notifications: Sequence[Notification],
        indexes: list[int],
        seen: set[str],
        outcomes: list[Outcome | None],
    ) -> None:
        """One order's changes, in order. After a failure the rest wait for a replay."""
        blocked: set[str] = set()
        failed = False
        for index in indexes:
            outcome = Outcome.FAILED if failed else self._one(notifications[index], seen, blocked)
            failed = outcome is Outcome.FAILED
            outcomes[index] = outcome

    def _one(self, notification: Notification, seen: set[str], blocked: set[str]) -> Outcome:
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
        if notification.id in seen:
            self._stats.add("duplicates")
            log.info(
                "notification.duplicate",
                notification_id=notification.id,
                order_id=notification.order_id,
            )
            return Outcome.DUPLICATE
        results = []
        for sink_name in sinks:
            outcome = self._deliver(notification, self._sinks[sink_name], sink_name in blocked)
            if outcome is Outcome.DEAD_LETTERED:
                blocked.add(sink_name)
            results.append(outcome)
        return _worst(results)

    def _deliver(self, notification: Notification, sink: Sink, blocked: bool) -> Outcome:
        context = {
            "sink": sink.name,
            "notification_id": notification.id,
            "order_id": notification.order_id,
            "shard_id": notification.shard_id,
        }
        if blocked:
            return self._dead_letter(
                notification,
                sink.name,
                DeliveryError(BLOCKED, False),
                0,
                self._iso_now(),
                context,
            )
        # A local sink answers at once: stamping the first attempt is only worth it for
        # remote ones (the log sink's rare failure is stamped when it is dead-lettered).
        first_at = None if sink.local else self._iso_now()
        started = self._runtime.monotonic()
        result = call_with_retry(
            lambda: self._send(sink, notification), self._policy, self._stop, context, self._sleep
        )
        if result.count > 1:
            self._stats.add("retries", result.count - 1)
        if result.error is None:
            self._stats.add(self._sent_counter[sink.name])
            if not sink.local:  # a local sink's own output line is the record of it
                log.info(
                    "notification.sent",
                    attempt=result.count,
                    latency_ms=round((self._runtime.monotonic() - started) * 1000),
                    **context,
                )
            return Outcome.DELIVERED
        if self._stop.is_set() and result.error.transient:
            log.info("notification.interrupted", attempt=result.count, **context)
            return Outcome.FAILED  # not given up on: a restart replays it under the same id
        return self._dead_letter(
            notification,
            sink.name,
            result.error,
            result.count,
            first_at or self._iso_now(),
            context,
        )

    @staticmethod
    def _send(sink: Sink, notification: Notification) -> None:
        try:
            sink.send(notification)
        except DeliveryError:
            raise
        except Exception as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=False) from exc

    def _dead_letter(
        self,
        notification: Notification,
        sink: str,
        error: DeliveryError,
        attempts: int,
        first_at: str,
        context: dict[str, str],
    ) -> Outcome:
        letter = DeadLetter(
            id=entry_id(notification.id, sink),
            sink=sink,
            error=str(error),
            attempts=attempts,
            first_attempt_at=first_at,
            last_attempt_at=self._iso_now(),
            shard_id=notification.shard_id,
            sequence_number=notification.sequence_number,
            order_id=notification.order_id,
            body=notification.body(),
        )
        if self._dlq is None:
            log.error("notification.failed", attempt=attempts, error=str(error), **context)
            return Outcome.FAILED
        try:
            self._dlq.put(letter)
        except Exception as exc:
            log.error("dlq.write_failed", error=str(exc), **context)
            return Outcome.FAILED
        self._stats.add("dead_lettered")
        self._stats.add(f"dead_lettered.{sink}")
        log.error("notification.dead_lettered", attempt=attempts, error=str(error), **context)
        return Outcome.DEAD_LETTERED

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
