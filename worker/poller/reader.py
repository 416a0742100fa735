"""One shard's reader: iterator, paced reads (catch-up when pages are full), pages settled.

Where a shard begins is decided once and then kept durably: an existing checkpoint
wins; a shard the application has never read starts where its stream meeting says
(LATEST only for shards listed when the application first met the stream). Before a
record of a fresh shard is delivered, the start is anchored in the checkpoint (the
first record read, or for LATEST the time the iterator was taken), so a restart or a
takeover resumes there and never skips a record that an owner has read.

How soon the next GetRecords follows is the `pacing.ReadPacer`'s call: at once while
pages come back full (a backlog), at most 5 a second otherwise, the idle wait when
empty, and throttling backs the allowed rate off (AIMD).

Each page goes to the shared settling core (`settle.Settler`): the same batching,
retries, dead-lettering and checkpoints as in fleet mode.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.batch.processor import BatchProcessor
from worker.batch.settle import Backoff, Item, Settler, TransientCheckpointError, write_with_retry
from worker.core.errors import (
    IteratorExpiredError,
    LeaseLostError,
    ShardNotFoundError,
    ThrottledError,
    TrimmedDataError,
)
from worker.core.models import Shard
from worker.core.runtime import THREADS, Runtime, Signal
from worker.core.stats import Stats
from worker.poller.pacing import ReadPacer
from worker.poller.stream import MAX_RECORDS_PER_READ, Page, Position, StreamSource
from worker.state.checkpoints import FROM_START, TRIM_HORIZON, Checkpoint, CheckpointStore

log = structlog.get_logger()

# A LATEST start anchored by time is resumed from records created this much before the
# anchor: ApproximateCreationDateTime is AWS's clock (to the second), the anchor ours.
ANCHOR_MARGIN_S = 5.0


class ShardReader:
    """Reads one shard to its end (or until stopped), checkpointing as it goes."""

    def __init__(
        self,
        *,
        source: StreamSource,
        stream_arn: str,
        shard: Shard,
        checkpoint: Checkpoint | None,
        start: str,
        processor: BatchProcessor,
        store: CheckpointStore,
        stats: Stats,
        stop: Signal,
        idle_wait_s: float,
        runtime: Runtime = THREADS,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.shard = shard
        self._source = source
        self._arn = stream_arn
        self._start = start  # where a shard with no checkpoint begins (its meeting's say)
        self._store = store
        self._stats = stats
        self._stop = stop
        self._clock = runtime.time
        self._pacer = ReadPacer(
            clock=runtime.monotonic, idle_wait_s=idle_wait_s, full_page=MAX_RECORDS_PER_READ
        )
        self.finished = False
        # Nothing resolved yet: the first record read (resume AT it), or the time a
        # LATEST start was anchored (resume at TRIM_HORIZON, passing over older ones).
        self._first_seen = checkpoint.first_unresolved if checkpoint else None
        self._not_before = checkpoint.not_before_s if checkpoint else None
        # Nothing durable yet: anchored at the first open (so an aged-out shard we
        # started is always known, and reported if unfinished).
        self._fresh = checkpoint is None or checkpoint.derived or checkpoint.unstarted
        # Pass over records created before the anchor: only when resuming someone
        # else's anchor at TRIM_HORIZON (our own LATEST iterator is already past them).
        self._filtering = self._not_before is not None
        self._settler = Settler(
            processor=processor,
            dlq=processor.dlq,
            stats=stats,
            stop=stop,
            holds=processor.holds_for(stream_arn, runtime.monotonic),
            checkpoint=self._write_progress,
            runtime=runtime,
            shard_id=shard.shard_id,
            jitter=jitter,
        )
        self._settler.done = checkpoint.sequence_number if checkpoint else None
        self._backoff: Backoff = self._settler.backoff
        self._trim_gap = False  # a trim skipped records; reported with the next record seen
        self._gap_after: str | None = None

    @property
    def done(self) -> str | None:
        """The last checkpoint: every record up to it is resolved."""
        return self._settler.done

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> None:
        """The reader's thread: to the shard's end or a stop; a lost lease stops the whole term."""
        shard_id = self.shard.shard_id
        structlog.contextvars.bind_contextvars(shard_id=shard_id)
        log.info("shard.started", checkpoint=self.done, parent_id=self.shard.parent_id)
        try:
            self._loop()
        except LeaseLostError:
            log.warning("shard.lease_lost")
            # The lease is gone for every shard of this term, not just this one: stop
            # them all now. Otherwise the runner, seeing a reader end, would start it
            # again from the refused checkpoint and re-send until its lease check ran.
            self._stop.set()
        except ShardNotFoundError as exc:
            log.warning("shard.gone", error=str(exc))
        except Exception:
            log.exception("shard.crashed")
            raise
        finally:
            # Whatever the reason, this process no longer reads the shard: its lag is
            # no longer ours to report (a stale entry would fire lag alarms forever).
            self._stats.forget_shard(self.shard.shard_id)
            log.info("shard.stopped", checkpoint=self.done, finished=self.finished)
            structlog.contextvars.unbind_contextvars("shard_id")

    def _position(self) -> Position:
        if self.done:
            return Position.after(self.done)
        if self._first_seen:
            # Nothing resolved yet: a replay starts at the first record read, since a
            # new LATEST iterator would skip it.
            return Position("AT_SEQUENCE_NUMBER", self._first_seen)
        if self._not_before is not None or not self._fresh:
            return Position("TRIM_HORIZON")
        if self._start == FROM_START:
            # All of this shard is ours: open at its first sequence number, so records
            # trimmed before anyone read them raise TrimmedDataAccess (reported as
            # data_loss) instead of TRIM_HORIZON passing over them in silence.
            first = self.shard.starting_sequence
            return Position("AT_SEQUENCE_NUMBER", first) if first else Position("TRIM_HORIZON")
        return Position(self._start)

    def _open(self, position: Position) -> str | None:
        """An iterator at `position`; None if the stop event came while retrying."""
        while not self._stop.is_set():
            try:
                return self._source.iterator(self._arn, self.shard.shard_id, position)
            except TrimmedDataError:
                self._trimmed()
                position = Position("TRIM_HORIZON")
            except ThrottledError as exc:
                self._stats.add("throttled")
                self._backoff.wait("GetShardIterator", str(exc))
        return None

    def _first_iterator(self) -> str | None:
        """The iterator to begin with, the start anchored; None if stopped."""
        iterator = self._open(self._position())
        if iterator is not None and self._fresh and not self._anchor_start():
            return None
        return iterator

    def _loop(self) -> None:
        iterator = self._first_iterator()
        while iterator is not None and not self._stop.is_set():
            if not self._pace():
                return
            try:
                page = self._source.read(self.shard.shard_id, iterator)
            except IteratorExpiredError:
                log.info("iterator.expired", after_sequence=self.done)
                iterator = self._open(self._position())
                continue
            except TrimmedDataError:
                self._trimmed()
                iterator = self._open(Position("TRIM_HORIZON"))
                continue
            except ThrottledError as exc:
                self._throttled(exc)
                continue
            if not self._handle(page):
                return  # stopped: the rest is read again by the next owner
            self._backoff.reset()
            self._pacer.page(len(page.records), full=page.full)
            if page.next_iterator is None:
                self._finish()
                return
            iterator = page.next_iterator

    def _anchor_start(self) -> bool:
        """A shard nobody has read: make its start durable before reading, so an owner
        after a crash resumes from here: the shard's first sequence number, so records
        trimmed before anyone read them are reported, not passed over (with a LATEST
        meeting's time anchor, which passes over what was created before it)."""
        self._fresh = False
        if self._start == TRIM_HORIZON or not self.shard.starting_sequence:
            # Its first records were trimmed before the meeting (not ours), or it has
            # no known start: the first record read will be the anchor.
            return True
        self._first_seen = self._first_seen or self.shard.starting_sequence
        return self._save()

    # -- one page --------------------------------------------------------------------

    def _handle(self, page: Page) -> bool:
        """Settle a page; False if stopped before all of it was resolved."""
        lag = self._stats.shard(self.shard.shard_id)
        lag.last_read_s = self._clock()
        records = self._past_anchor(page.records)
        if self._trim_gap:  # said with the first read after it, records or none
            self._report_gap(records[0].sequence_number if records else None)
        if not records:
            lag.oldest_uncheckpointed_s = None
            return True
        if self.done is None and self._first_seen is None:
            # Durable before any delivery: a new owner resumes AT this record.
            self._first_seen = records[0].sequence_number
            if not self._save():
                return False
        lag.oldest_uncheckpointed_s = records[0].created_at_s or self._clock()
        settled = self._settler.settle(records)
        if settled:
            lag.oldest_uncheckpointed_s = records[-1].created_at_s or self._clock()
        return settled

    def _past_anchor(self, records: Sequence[Item]) -> list[Item]:
        """Pass over records created before a time-anchored LATEST start (they were
        never ours); the first one at or after it ends the anchor."""
        if not self._filtering or self._not_before is None or not records:
            return list(records)
        cutoff = self._not_before - ANCHOR_MARGIN_S
        keep = 0
        while keep < len(records) and (records[keep].created_at_s or cutoff) < cutoff:
            keep += 1
        if keep < len(records):
            self._not_before = None
            self._filtering = False
        if keep:
            self._settler.checkpoint(records[keep - 1].sequence_number)  # not ours: resolved
        return list(records[keep:])

    # -- checkpoints -------------------------------------------------------------------

    def _checkpoint(self, sequence: str | None, finished: bool = False) -> Checkpoint:
        anchored = sequence is None and not finished
        return Checkpoint(
            self.shard.shard_id,
            sequence,
            finished,
            self.shard.parent_id,
            first_unresolved=self._first_seen if anchored else None,
            not_before_s=self._not_before if anchored else None,
        )

    def _write(self, checkpoint: Checkpoint) -> None:
        """One checkpoint write; AWS trouble is transient, a lost lease is not."""
        try:
            self._store.save(self._arn, checkpoint)
        except (ClientError, BotoCoreError) as exc:
            raise TransientCheckpointError(str(exc)) from exc

    def _write_progress(self, sequence: str) -> None:
        self._write(self._checkpoint(sequence))

    def _save(self, finished: bool = False) -> bool:
        """Write the current position (an anchor, or the end), retried like any other."""
        checkpoint = self._checkpoint(self.done, finished)
        written = write_with_retry(
            lambda: self._write(checkpoint),
            stop=self._stop,
            backoff=self._backoff,
            what=self.done,
        )
        if written:
            self._stats.add("checkpoints")
        return written

    def _finish(self) -> None:
        if self._trim_gap:
            self._report_gap(None)
        if not self._save(finished=True):
            return
        self.finished = True
        self._stats.forget_shard(self.shard.shard_id)
        log.info("shard.finished", checkpoint=self.done)

    # -- pacing and faults -------------------------------------------------------------

    def _pace(self) -> bool:
        """Wait for the next read slot; False if stopped meanwhile (then no read at all:
        a stop that cut the wait short must not buy a read above the rate limit)."""
        wait = self._pacer.wait_s()
        if wait > 0 and self._stop.wait(wait):
            return False
        self._pacer.reading()
        return True

    def _throttled(self, exc: ThrottledError) -> None:
        """GetRecords still throttled (or 5xx) after botocore's retries: the allowed
        read rate halves (AIMD); the wait is spent by the next `_pace`."""
        self._stats.add("throttled")
        delay = self._pacer.throttled()
        log.warning(
            "stream.backoff",
            action="GetRecords",
            attempt=self._pacer.throttles,
            delay_ms=round(delay * 1000),
            error=str(exc),
            reads_per_s=self._pacer.rate_per_s,
        )

    def _trimmed(self) -> None:
        """Records between our position and the trim horizon are gone: say so, loudly."""
        self._trim_gap = True
        self._gap_after = self.done

    def _report_gap(self, before_sequence: str | None) -> None:
        log.error(
            "data_loss",
            reason="trimmed",
            after_sequence=self._gap_after,
            before_sequence=before_sequence,
        )
        self._stats.add("data_loss")
        self._trim_gap = False
