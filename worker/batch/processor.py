"""One batch of a shard: decide, dispatch, and compute the checkpoint it allows.

The same core serves the poller and the KCL record processor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from worker.core.detect import Verdict, detect, iso_utc
from worker.core.models import BatchResult, Notification, Outcome, StreamRecord
from worker.core.runtime import Signal
from worker.core.stats import Stats
from worker.state.dlq import HoldStore, put_unparseable
from worker.state.holds import HoldBook

log = structlog.get_logger()


class Dispatches(Protocol):
    """What a batch needs of the dispatcher (worker.delivery.dispatch.Dispatcher)."""

    def dispatch(
        self,
        notifications: Sequence[Notification],
        progress: Callable[[list[Outcome | None]], None] | None = None,
        *,
        stop: Signal | None = None,
        holds: HoldBook | None = None,
    ) -> list[Outcome]:
        """Deliver the changes; outcomes line up with them, `progress` gets the flushed part."""
        ...


class Enricher(Protocol):
    """Adds what a page's changes need before dispatch (worker.delivery.enrich.Profiles)."""

    def enrich(self, notifications: Sequence[Notification]) -> list[Notification]:
        """The changes with what sinks need filled in; a failed read returns them unchanged."""
        ...


class BatchProcessor:
    """The core shared by the poller and the KCL processor: one batch in, the
    checkpoint it allows out."""

    def __init__(
        self,
        dispatcher: Dispatches,
        dlq: HoldStore | None,
        stats: Stats,
        clock: Callable[[], float],
        *,
        enrich: Enricher | None = None,
    ) -> None:
        """`enrich`, when some sink needs the users' profiles, reads them once per page."""
        self._dispatcher = dispatcher
        self._dlq = dlq
        self._stats = stats
        self._clock = clock
        self._enrich = enrich

    @property
    def dlq(self) -> HoldStore | None:
        """Where dead letters go (None: nowhere, a failure stays unresolved)."""
        return self._dlq

    def holds_for(self, stream_arn: str, monotonic: Callable[[], float]) -> HoldBook:
        """A new view of the orders held on `stream_arn`'s table, for one reader."""
        return HoldBook(store=self._dlq, stream_arn=stream_arn, monotonic=monotonic)

    def process(
        self,
        records: Sequence[StreamRecord],
        on_progress: Callable[[str], None] | None = None,
        *,
        stop: Signal | None = None,
        holds: HoldBook | None = None,
    ) -> BatchResult:
        """Handle records in sequence order; the checkpoint never passes an unresolved one.

        During a long batch (a slow receiver, retries) `on_progress` gets the checkpoint
        the finished part already allows, every few seconds.
        """
        now = self._clock()
        outcomes: list[Outcome] = []
        pending: list[tuple[int, Notification]] = []
        for record in records:
            decision = detect(record, now)
            if decision.verdict is Verdict.NOTIFY and decision.notification is not None:
                if decision.warning:
                    log.warning(
                        "status.unknown",
                        event_id=record.event_id,
                        order_id=decision.notification.order_id,
                        reason=decision.warning,
                    )
                pending.append((len(outcomes), decision.notification))
                outcomes.append(Outcome.FAILED)  # filled in below
            elif decision.verdict is Verdict.SKIP:
                log.debug(
                    "record.skipped",
                    event_id=record.event_id,
                    reason=decision.reason,
                    shard_id=record.shard_id,
                )
                outcomes.append(Outcome.SKIPPED)
            else:
                arn = holds.stream_arn if holds else ""
                outcomes.append(self._reject(record, decision.reason, now, arn))
        if pending:

            def progress(partial: list[Outcome | None]) -> None:
                merged = list(outcomes)
                for (index, _), outcome in zip(pending, partial, strict=True):
                    merged[index] = outcome or Outcome.FAILED
                checkpoint = _resolved_prefix(records, merged)
                if checkpoint is not None and on_progress is not None:
                    on_progress(checkpoint)

            delivered = self._dispatcher.dispatch(
                self._changes(pending), progress, stop=stop, holds=holds
            )
            for (index, _), outcome in zip(pending, delivered, strict=True):
                outcomes[index] = outcome
        return self._result(records, outcomes)

    def _changes(self, pending: list[tuple[int, Notification]]) -> list[Notification]:
        """The page's changes, enriched when a sink needs it (one read for the page)."""
        changes = [n for _, n in pending]
        return self._enrich.enrich(changes) if self._enrich is not None else changes

    def _reject(self, record: StreamRecord, reason: str, now: float, stream_arn: str) -> Outcome:
        log.error(
            "record.rejected",
            event_id=record.event_id,
            reason=reason,
            shard_id=record.shard_id,
            sequence_number=record.sequence_number,
        )
        self._stats.add("rejected")
        if self._dlq is None:
            return Outcome.SKIPPED
        keys, new_image, old_image = record.full_images()  # typed decoding dropped some
        raw = {
            "eventID": record.event_id,
            "eventName": record.event_name,
            "Keys": keys,
            "NewImage": new_image,
            "OldImage": old_image,
        }
        stored = put_unparseable(
            self._dlq,
            event_id=record.event_id,
            reason=reason,
            shard_id=record.shard_id,
            sequence_number=record.sequence_number,
            record=json.dumps(raw, default=str),
            at=iso_utc(now),
            stream_arn=stream_arn,
        )
        if not stored:
            return Outcome.FAILED
        return Outcome.DEAD_LETTERED

    def _result(self, records: Sequence[StreamRecord], outcomes: list[Outcome]) -> BatchResult:
        checkpoint = _resolved_prefix(records, outcomes)
        unresolved = sum(1 for o in outcomes if not o.resolved)
        self._stats.add("records", len(records))
        return BatchResult(checkpoint, unresolved)


def _resolved_prefix(records: Sequence[StreamRecord], outcomes: Sequence[Outcome]) -> str | None:
    """The sequence number of the last record before the first unresolved one."""
    checkpoint: str | None = None
    for record, outcome in zip(records, outcomes, strict=True):
        if not outcome.resolved:
            break
        checkpoint = record.sequence_number
    return checkpoint
