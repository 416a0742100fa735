"""Concurrent delivery with order per order id, retries, and the DLQ as the last stop.

A batch is split into groups by order; groups run in parallel on one bounded pool
(ORDERSTREAM_CONCURRENCY in flight across all shards), while a group's changes go out
one after another. A slow or failing order delays only its own later changes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from worker.dedup import DedupStore
from worker.detect import iso_utc
from worker.dlq import DeadLetter, DeadLetterStore, entry_id
from worker.errors import DeliveryError
from worker.models import Notification, Outcome
from worker.retrying import RetryPolicy, call_with_retry
from worker.rules import Rules
from worker.sinks import Sink
from worker.stats import Stats

log = structlog.get_logger()
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
        sinks: Mapping[str, Sink],
        rules: Rules,
        policy: RetryPolicy,
        dlq: DeadLetterStore | None,
        stop: threading.Event,
        stats: Stats,
        concurrency: int = 32,
        dedup: DedupStore | None = None,
        iso_now: Callable[[], str] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._sinks = sinks
        self._rules = rules
        self._policy = policy
        self._dlq = dlq
        self._stop = stop
        self._stats = stats
        self._dedup = dedup
        self._sleep = sleep
        self._iso_now = iso_now or _iso_now
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")

    def dispatch(self, notifications: Sequence[Notification]) -> list[Outcome]:
        """Deliver a batch; the outcomes line up with `notifications`."""
        seen = self._dedup.seen(n.id for n in notifications) if self._dedup else set()
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, notification in enumerate(notifications):
            groups[(notification.user_id, notification.order_id)].append(index)
        futures = {
            key: self._pool.submit(self._run_group, [notifications[i] for i in indexes], seen)
            for key, indexes in groups.items()
        }
        outcomes = [Outcome.FAILED] * len(notifications)
        for key, future in futures.items():
            for index, outcome in zip(groups[key], future.result(), strict=True):
                outcomes[index] = outcome
        if self._dedup:
            delivered = [
                n.id for n, o in zip(notifications, outcomes, strict=True) if o is Outcome.DELIVERED
            ]
            self._remember(delivered)
        return outcomes

    def _remember(self, ids: list[str]) -> None:
        assert self._dedup is not None
        try:
            self._dedup.remember(ids)
        except Exception as exc:
            log.warning("dedup.write_failed", error=str(exc), ids=len(ids))

    def _run_group(self, group: list[Notification], seen: set[str]) -> list[Outcome]:
        """One order's changes, in order. After a failure the rest wait for a replay."""
        blocked: set[str] = set()
        outcomes: list[Outcome] = []
        for notification in group:
            if outcomes and outcomes[-1] is Outcome.FAILED:
                outcomes.append(Outcome.FAILED)
                continue
            outcomes.append(self._one(notification, seen, blocked))
        return outcomes

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
        first_at = self._iso_now()
        if blocked:
            return self._dead_letter(
                notification, sink.name, DeliveryError(BLOCKED, False), 0, first_at, context
            )
        started = time.monotonic()
        result = call_with_retry(
            lambda: self._send(sink, notification), self._policy, self._stop, context, self._sleep
        )
        self._stats.add("retries", max(0, result.count - 1))
        if result.error is None:
            self._stats.add(f"sent.{sink.name}")
            log.info(
                "notification.sent",
                attempt=result.count,
                latency_ms=round((time.monotonic() - started) * 1000),
                **context,
            )
            return Outcome.DELIVERED
        if self._stop.is_set() and result.error.transient:
            log.info("notification.interrupted", attempt=result.count, **context)
            return Outcome.FAILED  # not given up on: a restart replays it under the same id
        return self._dead_letter(
            notification, sink.name, result.error, result.count, first_at, context
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
        self._pool.shutdown(wait=True)
        for sink in self._sinks.values():
            sink.close()


def _iso_now() -> str:
    return iso_utc(time.time())
