"""One shard under the KCL: amazon-kclpy v3 callbacks over the poller's batch core.

The KCL starts one processor process per shard lease and waits for each callback to
return. Records go through the same BatchProcessor as the poller (decide, transition
rules, dispatch with retries, DLQ) in chunks, each followed by a checkpoint through
the KCL at the last resolved record.

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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog
from amazon_kclpy.kcl import CheckpointError
from amazon_kclpy.v3.processor import RecordProcessorBase

from worker.detect import iso_utc
from worker.dlq import DeadLetterStore, put_unparseable
from worker.kcl.records import KclRecord, decode
from worker.processor import BatchProcessor
from worker.stats import Stats

log = structlog.get_logger()

CHUNK = 250  # records dispatched together, then one checkpoint (as the poller does)
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
# Checkpoint errors (the Java exception's simple name) worth another try: DynamoDB
# throttling the lease table, or failing under the KCL.
RETRIED_CHECKPOINT_ERRORS = frozenset(
    {"ThrottlingException", "KinesisClientLibDependencyException"}
)
LEASE_GONE = "ShutdownException"  # the lease was lost or is being handed over


class Checkpointer(Protocol):
    """amazon_kclpy.kcl.Checkpointer: no sequence number means "the end of the batch"."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


class ShardProcessor(RecordProcessorBase):  # type: ignore[misc] # amazon_kclpy is untyped
    """The amazon-kclpy v3 record processor of one shard."""

    def __init__(
        self,
        batch: BatchProcessor,
        dlq: DeadLetterStore | None,
        stats: Stats,
        stop: threading.Event,
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
        self._holds = batch.holds_for(stream_arn, monotonic)
        self._stats_interval_s = stats_interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter
        self._shard_id = ""
        self._done: str | None = None  # last resolved record (KCL sequence number)
        self._halted: str | None = None  # why this processor no longer checkpoints
        self._last_stats = monotonic()

    # -- the amazon-kclpy v3 callbacks -----------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self._shard_id = str(initialize_input.shard_id)
        structlog.contextvars.bind_contextvars(shard_id=self._shard_id)
        log.info("kcl.shard.started", checkpoint=initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if self._halted:
            # Checkpointing is impossible now; the next owner reads these again.
            log.info("kcl.batch.ignored", records=len(records), reason=self._halted)
            return
        started = self._monotonic()
        items = [decode(str(r.sequence_number), r.data, self._shard_id) for r in records]
        checkpointer: Checkpointer = process_records_input.checkpointer
        for start in range(0, len(items), CHUNK):
            if not self._settle(items[start : start + CHUNK], checkpointer):
                break
        log.debug(
            "kcl.batch",
            records=len(items),
            checkpoint=self._done,
            duration_ms=round((self._monotonic() - started) * 1000),
        )
        self._maybe_stats(process_records_input.millis_behind_latest)

    def lease_lost(self, lease_lost_input: Any) -> None:
        self._halt("lease_lost")
        log.info("kcl.shard.lease_lost", checkpoint=self._done)

    def shard_ended(self, shard_ended_input: Any) -> None:
        if self._halted:
            # Never mark the shard finished past records that were not resolved.
            log.warning("kcl.shard.ended_unfinished", reason=self._halted)
            return
        if self._checkpoint(shard_ended_input.checkpointer, None):
            log.info("kcl.shard.ended", checkpoint=self._done)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        if self._halted or self._done is None:
            log.info("kcl.shard.shutdown", checkpoint=self._done, reason=self._halted)
            return
        # Every batch was checkpointed before its callback returned; writing the last
        # one again is cheap and makes the handoff explicit.
        if self._checkpoint(shutdown_requested_input.checkpointer, self._done):
            log.info("kcl.shard.shutdown", checkpoint=self._done)

    # -- a chunk until it is resolved --------------------------------------------------

    def _settle(self, chunk: Sequence[KclRecord], checkpointer: Checkpointer) -> bool:
        """Process `chunk` until every record is resolved; False once we must stop."""
        pending = list(chunk)
        failures = 0
        while True:
            resolved = self._attempt(pending)
            if resolved:
                self._done = pending[resolved - 1].sequence_number
                if not self._checkpoint(checkpointer, self._done):
                    return False
            pending = pending[resolved:]
            if not pending:
                return True
            failures += 1
            delay = self._backoff(failures)
            log.warning(
                "kcl.batch.retry",
                unresolved=len(pending),
                attempt=failures,
                delay_ms=round(delay * 1000),
                after_sequence=self._done,
            )
            if self._stop.wait(delay):
                self._halt("stopping")
                return False

    def _attempt(self, items: Sequence[KclRecord]) -> int:
        """Process `items` in order; how many leading ones are resolved."""
        try:
            return self._resolve(items)
        except Exception:  # a bug must not make KCL skip records: retried like the rest
            log.exception("kcl.batch.failed", records=len(items))
            return 0

    def _resolve(self, items: Sequence[KclRecord]) -> int:
        done = 0
        while done < len(items):
            if items[done].record is None:
                if not self._dead_letter(items[done]):
                    return done
                done += 1
                continue
            end = done
            while end < len(items) and items[end].record is not None:
                end += 1
            segment = items[done:end]
            result = self._batch.process(
                [item.record for item in segment if item.record],
                stop=self._stop,
                holds=self._holds,
            )
            resolved = len(segment)
            if result.unresolved:
                stream_seqs = [item.record.sequence_number for item in segment if item.record]
                checkpoint = result.checkpoint
                resolved = stream_seqs.index(checkpoint) + 1 if checkpoint in stream_seqs else 0
            done += resolved
            if resolved < len(segment):
                return done
        return done

    def _dead_letter(self, item: KclRecord) -> bool:
        """A record that cannot be decoded: logged and kept in the DLQ with its payload."""
        log.error(
            "record.rejected",
            event_id=item.event_id,
            reason=item.error,
            sequence_number=item.sequence_number,
        )
        self._stats.add("rejected")
        if self._dlq is None:
            return True
        return put_unparseable(
            self._dlq,
            item.event_id,
            item.error or "undecodable record",
            self._shard_id,
            item.sequence_number,
            item.raw,
            iso_utc(self._clock()),
            self._holds.stream_arn,
        )

    # -- checkpoints -----------------------------------------------------------------

    def _checkpoint(self, checkpointer: Checkpointer, sequence: str | None) -> bool:
        """Checkpoint at `sequence` (None: the end of the shard); False once we must stop.

        Throttling and dependency failures are retried until they pass or we are
        stopped. A lost lease stops this processor. Anything else is a state we do not
        understand: exit, so the daemon restarts and the shard is read again from its
        last checkpoint, rather than go on with checkpoints that may be wrong.
        """
        failures = 0
        while True:
            try:
                checkpointer.checkpoint(sequence)
            except CheckpointError as exc:
                error = str(exc.value)
                if error == LEASE_GONE:
                    self._halt("lease_gone")
                    log.info("kcl.checkpoint.lease_gone", sequence_number=sequence)
                    return False
                if error not in RETRIED_CHECKPOINT_ERRORS:
                    log.error("kcl.checkpoint.failed", error=error, sequence_number=sequence)
                    raise SystemExit(1) from exc
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "kcl.checkpoint.retry",
                    error=error,
                    attempt=failures,
                    delay_ms=round(delay * 1000),
                    sequence_number=sequence,
                )
                if self._stop.wait(delay):
                    self._halt("stopping")
                    return False
                continue
            self._stats.add("checkpoints")
            log.debug("kcl.checkpoint", sequence_number=sequence)
            return True

    # -- helpers -----------------------------------------------------------------------

    def _halt(self, reason: str) -> None:
        if not self._halted:
            self._halted = reason

    def _backoff(self, failures: int) -> float:
        """Full jitter, doubling up to BACKOFF_CAP_S."""
        return self._jitter(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures))

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
