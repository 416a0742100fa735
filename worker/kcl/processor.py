"""One shard under the KCL: amazon-kclpy v3 callbacks over the poller's settling core.

The KCL starts one processor process per shard lease and waits for each callback to
return. Records go through the same `settle.Settler` as the poller's (decide, rules,
dispatch with retries and holds, DLQ, unreadable records dead-lettered) in chunks,
each followed by a checkpoint through the KCL at the last resolved record.

Two rules keep "at least once" true here:
- KCL moves on (and skips the records) when a callback raises, and a later checkpoint
  would pass them. So nothing escapes: a failure goes to the DLQ, and what is still
  unresolved (the DLQ itself is down, or a bug) is retried in-process, with backoff,
  before `process_records` returns. Progress up to the first unresolved record is
  checkpointed meanwhile, so a crash re-sends only from there.
- Once the lease is gone (`ShutdownException`, `lease_lost`) this processor neither
  processes nor checkpoints again; the new owner reads on from the last checkpoint.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from amazon_kclpy.kcl import CheckpointError
from amazon_kclpy.v3.processor import RecordProcessorBase

from worker.batch.processor import BatchProcessor
from worker.batch.settle import (
    Item,
    Settler,
    TransientCheckpointError,
    Unreadable,
    write_with_retry,
)
from worker.core.errors import LeaseLostError
from worker.core.runtime import THREADS, Signal, Task
from worker.core.stats import Stats
from worker.kcl.records import KclRecord, decode
from worker.state.dlq import LetterSink

log = structlog.get_logger()

# Checkpoint errors (the Java exception's simple name) worth another try: DynamoDB
# throttling the lease table, or failing under the KCL.
RETRIED_CHECKPOINT_ERRORS = frozenset(
    {"ThrottlingException", "KinesisClientLibDependencyException"}
)
LEASE_GONE = "ShutdownException"  # the lease was lost or is being handed over


class _Clocks:
    """The part of a Runtime the settling core reads here: the processor's own clocks
    (KCL drives this process; it starts no threads of its own)."""

    def __init__(self, clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self.time = clock
        self.monotonic = monotonic

    def event(self) -> Signal:
        return threading.Event()

    def spawn(self, name: str, target: Callable[[], None]) -> Task:
        return THREADS.spawn(name, target)


class Checkpointer(Protocol):
    """amazon_kclpy.kcl.Checkpointer: no sequence number means "the end of the batch"."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None:
        """Progress up to `sequence_number` (None: the whole batch); raises CheckpointError."""
        ...


class ShardProcessor(RecordProcessorBase):  # type: ignore[misc] # amazon_kclpy is untyped
    """The amazon-kclpy v3 record processor of one shard."""

    def __init__(
        self,
        batch: BatchProcessor,
        dlq: LetterSink | None,
        stats: Stats,
        stop: Signal,
        *,
        stats_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
        stream_arn: str = "",
    ) -> None:
        self._batch = batch
        self._dlq = dlq
        self._stats = stats
        self._stop = stop
        self._stream_arn = stream_arn
        self._stats_interval_s = stats_interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter
        self._shard_id = ""
        self._halted: str | None = None  # why this processor no longer checkpoints
        self._last_stats = monotonic()
        # The checkpointer of the callback in progress, and KCL's sequence number for
        # each of its records (the settling core speaks in stream sequence numbers).
        self._checkpointer: Checkpointer | None = None
        self._kcl_sequence: dict[str, str] = {}
        self._settler = self._new_settler()

    def _new_settler(self) -> Settler:
        return Settler(
            processor=self._batch,
            dlq=self._dlq,
            stats=self._stats,
            stop=self._stop,
            holds=self._batch.holds_for(self._stream_arn, self._monotonic),
            checkpoint=self._write,
            runtime=_Clocks(self._clock, self._monotonic),
            shard_id=self._shard_id,
            jitter=self._jitter,
        )

    @property
    def _done(self) -> str | None:
        done = self._settler.done
        return self._kcl_sequence.get(done, done) if done else None

    # -- the amazon-kclpy v3 callbacks -----------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        """KCL gave us the shard: a settler for it, and its id on every log line from here."""
        self._shard_id = str(initialize_input.shard_id)
        self._settler = self._new_settler()
        structlog.contextvars.bind_contextvars(shard_id=self._shard_id)
        log.info("kcl.shard.started", checkpoint=initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        """Settle the batch before returning (KCL would skip what is left), checkpointing."""
        records = process_records_input.records
        if self._halted:
            # Checkpointing is impossible now; the next owner reads these again.
            log.info("kcl.batch.ignored", records=len(records), reason=self._halted)
            return
        started = self._monotonic()
        self._forget_settled()
        items = [
            self._item(decode(str(r.sequence_number), r.data, self._shard_id)) for r in records
        ]
        self._checkpointer = process_records_input.checkpointer
        try:
            settled = self._settler.settle(items)
        except LeaseLostError:
            self._halt("lease_gone")
            settled = False
        if not settled and not self._halted:
            self._halt("stopping")
        log.debug(
            "kcl.batch",
            records=len(items),
            checkpoint=self._done,
            duration_ms=round((self._monotonic() - started) * 1000),
        )
        self._maybe_stats(process_records_input.millis_behind_latest)

    def _forget_settled(self) -> None:
        """Keep only the settled position's KCL sequence: the previous batch was settled
        whole (else this processor halted), so nothing older is asked for again, and a
        long-lived processor's map stays the size of one batch."""
        done = self._settler.done
        kept = self._kcl_sequence.get(done) if done else None
        self._kcl_sequence = {done: kept} if done and kept else {}

    def _item(self, record: KclRecord) -> Item:
        """The settling core's view of a KCL record (stream sequence numbers)."""
        if record.record is None:
            stand_in = Unreadable(
                record.sequence_number,
                record.event_id,
                record.error or "undecodable record",
                record.raw,
            )
            self._kcl_sequence[stand_in.sequence_number] = record.sequence_number
            return stand_in
        self._kcl_sequence[record.record.sequence_number] = record.sequence_number
        return record.record

    def lease_lost(self, lease_lost_input: Any) -> None:
        """The lease went elsewhere: this processor neither processes nor checkpoints again."""
        self._halt("lease_lost")
        log.info("kcl.shard.lease_lost", checkpoint=self._done)

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Checkpoint SHARD_END so KCL starts the children; never past unresolved records."""
        if self._halted:
            # Never mark the shard finished past records that were not resolved.
            log.warning("kcl.shard.ended_unfinished", reason=self._halted)
            return
        if self._checkpoint(shard_ended_input.checkpointer, None):
            log.info("kcl.shard.ended", checkpoint=self._done)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """Handoff at a graceful stop: checkpoint the last resolved record again."""
        if self._halted or self._done is None:
            log.info("kcl.shard.shutdown", checkpoint=self._done, reason=self._halted)
            return
        # Every batch was checkpointed before its callback returned; writing the last
        # one again is cheap and makes the handoff explicit.
        if self._checkpoint(shutdown_requested_input.checkpointer, self._done):
            log.info("kcl.shard.shutdown", checkpoint=self._done)

    # -- checkpoints -----------------------------------------------------------------

    def _write(self, sequence: str) -> None:
        """The settling core's checkpoint write, through KCL's checkpointer."""
        assert self._checkpointer is not None
        self._checkpoint_once(self._checkpointer, self._kcl_sequence.get(sequence, sequence))

    def _checkpoint_once(self, checkpointer: Checkpointer, sequence: str | None) -> None:
        """One KCL checkpoint, its Java errors translated: throttling and dependency
        failures are transient, a lost lease ends the term, and anything else is a state
        we do not understand: exit, so the daemon restarts and the shard is read again
        from its last checkpoint, rather than go on with checkpoints that may be wrong."""
        try:
            checkpointer.checkpoint(sequence)
        except CheckpointError as exc:
            error = str(exc.value)
            if error == LEASE_GONE:
                log.info("kcl.checkpoint.lease_gone", sequence_number=sequence)
                raise LeaseLostError("KCL: the shard lease is gone") from exc
            if error not in RETRIED_CHECKPOINT_ERRORS:
                log.error("kcl.checkpoint.failed", error=error, sequence_number=sequence)
                raise SystemExit(1) from exc
            raise TransientCheckpointError(error) from exc
        log.debug("kcl.checkpoint", sequence_number=sequence)

    def _checkpoint(self, checkpointer: Checkpointer, sequence: str | None) -> bool:
        """A checkpoint outside a batch (shard end, handoff), retried like the rest;
        False once we must stop."""
        try:
            written = write_with_retry(
                lambda: self._checkpoint_once(checkpointer, sequence),
                stop=self._stop,
                backoff=self._settler.backoff,
                what=sequence,
            )
        except LeaseLostError:
            self._halt("lease_gone")
            return False
        if not written:
            self._halt("stopping")
            return False
        self._stats.add("checkpoints")
        return True

    # -- helpers -----------------------------------------------------------------------

    def _halt(self, reason: str) -> None:
        if not self._halted:
            self._halted = reason

    def _maybe_stats(self, millis_behind_latest: Any) -> None:
        now = self._monotonic()
        if now - self._last_stats < self._stats_interval_s:
            return
        self._last_stats = now
        log.info(
            "kcl.stats",
            **self._stats.totals(),
            rejected=self._stats.counts().get("rejected", 0),
            lag_ms=millis_behind_latest,
            checkpoint=self._done,
        )
