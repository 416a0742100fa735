"""The settling core both drivers share: bring a run of one shard's records to resolved.

The poller's shard reader and the KCL record processor hand a page (a processRecords
batch) to a `Settler`. It goes through the records in chunks: decides, dispatches,
dead-letters the unreadable, and checkpoints the resolved prefix after each chunk (and
every few seconds during a long one, once the sinks have flushed). What stays
unresolved is retried in place with full-jitter backoff, never skipped, until it is
resolved or the term stops. Checkpoint writes are retried the same way; a lost lease
ends the term. So every guarantee holds in both modes, from one implementation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from worker.batch.processor import BatchProcessor
from worker.core.detect import iso_utc
from worker.core.errors import LeaseLostError
from worker.core.models import StreamRecord
from worker.core.runtime import Runtime, Signal
from worker.core.stats import Stats
from worker.state.dlq import LetterSink, put_unparseable
from worker.state.holds import HoldBook

log = structlog.get_logger()

CHUNK = 1000  # records dispatched together, then one checkpoint
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0


@dataclass(frozen=True)
class Unreadable:
    """A record that could not be decoded: dead-lettered with its raw form, so it is
    never silently passed over. It stands at `sequence_number` for the checkpoint."""

    sequence_number: str
    event_id: str
    reason: str
    raw: str | None
    created_at_s: float | None = None


Item = StreamRecord | Unreadable


class TransientCheckpointError(Exception):
    """A checkpoint write failed for a passing reason (throttling, 5xx, a timeout)."""


class Backoff:
    """Full-jitter exponential waits, spent on the stop signal so a stop cuts them short."""

    def __init__(self, *, stop: Signal, jitter: Callable[[float, float], float]) -> None:
        self._stop = stop
        self._jitter = jitter
        self.failures = 0

    def wait(self, action: str, error: str, **fields: object) -> bool:
        """Wait after one more failure; False if stopped meanwhile."""
        self.failures += 1
        delay = self._jitter(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**self.failures))
        log.warning(
            "stream.backoff",
            action=action,
            attempt=self.failures,
            delay_ms=round(delay * 1000),
            error=error,
            **fields,
        )
        return not self._stop.wait(delay)

    def reset(self) -> None:
        """A success: the next failure waits from the base again."""
        self.failures = 0


def write_with_retry(
    write: Callable[[], None], *, stop: Signal, backoff: Backoff, what: str | None
) -> bool:
    """A checkpoint write, retried while it fails transiently and we are not stopped.

    False if abandoned at a stop (the next owner re-sends from the last one written);
    LeaseLostError propagates: the new owner's checkpoints win.
    """
    while True:
        try:
            write()
        except TransientCheckpointError as exc:
            if stop.is_set():
                log.warning("checkpoint.abandoned", checkpoint=what, error=str(exc))
                return False
            if not backoff.wait("checkpoint", str(exc)):
                log.warning("checkpoint.abandoned", checkpoint=what, error=str(exc))
                return False
            continue
        return True


class Settler:
    """One shard's records to resolved, checkpointed as they resolve."""

    def __init__(
        self,
        *,
        processor: BatchProcessor,
        dlq: LetterSink | None,
        stats: Stats,
        stop: Signal,
        holds: HoldBook,
        checkpoint: Callable[[str], None],
        runtime: Runtime,
        shard_id: str,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._processor = processor
        self._dlq = dlq
        self._stats = stats
        self._stop = stop
        self._holds = holds
        self._write = checkpoint
        self._runtime = runtime
        self._shard_id = shard_id
        self.backoff = Backoff(stop=stop, jitter=jitter)
        self.done: str | None = None  # the last checkpoint written

    def settle(self, items: Sequence[Item]) -> bool:
        """Resolve and checkpoint every item; False if the term stopped first.

        Raises LeaseLostError once a checkpoint is refused (and sets the stop signal).
        """
        for start in range(0, len(items), CHUNK):
            if not self._settle_chunk(list(items[start : start + CHUNK])):
                return False
            if self._stop.is_set() and start + CHUNK < len(items):
                return False  # stopping mid-page: the rest is read again by the next owner
        return True

    def checkpoint(self, sequence: str) -> bool:
        """Write a checkpoint at `sequence`, retried; False if abandoned at a stop."""
        if sequence == self.done:
            return True
        try:
            written = write_with_retry(
                lambda: self._write(sequence),
                stop=self._stop,
                backoff=self.backoff,
                what=sequence,
            )
        except LeaseLostError:
            self._stop.set()  # every delivery of this term stops with it
            raise
        if written:
            self.done = sequence
            self._stats.add("checkpoints")
        return written

    def _settle_chunk(self, pending: list[Item]) -> bool:
        while True:
            resolved = self._attempt(pending)
            if resolved and not self.checkpoint(pending[resolved - 1].sequence_number):
                return False
            pending = pending[resolved:]
            if not pending:
                self.backoff.reset()
                return True
            if self._stop.is_set():
                return False
            if not self.backoff.wait(
                "dispatch", f"{len(pending)} unresolved", after_sequence=self.done
            ):
                return False

    def _attempt(self, items: Sequence[Item]) -> int:
        """Process `items` in order; how many leading ones are resolved."""
        try:
            return self._resolve(items)
        except LeaseLostError:
            raise
        except Exception:  # a bug must not skip records: retried like the rest
            log.exception("batch.failed", records=len(items))
            return 0

    def _resolve(self, items: Sequence[Item]) -> int:
        done = 0
        while done < len(items):
            item = items[done]
            if isinstance(item, Unreadable):
                if not self._dead_letter(item):
                    return done
                done += 1
                continue
            end = done
            while end < len(items) and not isinstance(items[end], Unreadable):
                end += 1
            segment = [i for i in items[done:end] if isinstance(i, StreamRecord)]
            result = self._processor.process(
                segment, self._progress, stop=self._stop, holds=self._holds
            )
            sequences = [r.sequence_number for r in segment]
            resolved = len(segment)
            if result.unresolved:
                resolved = sequences.index(result.checkpoint) + 1 if result.checkpoint else 0
            done += resolved
            if resolved < len(segment):
                return done
        return done

    def _progress(self, sequence: str) -> None:
        """A long chunk is partly done (and flushed): checkpoint what it allows."""
        self.checkpoint(sequence)

    def _dead_letter(self, item: Unreadable) -> bool:
        log.error(
            "record.rejected",
            event_id=item.event_id,
            reason=item.reason,
            sequence_number=item.sequence_number,
        )
        self._stats.add("rejected")
        if self._dlq is None:
            return True
        return put_unparseable(
            self._dlq,
            event_id=item.event_id,
            reason=item.reason,
            shard_id=self._shard_id,
            sequence_number=item.sequence_number,
            record=item.raw,
            at=iso_utc(self._runtime.time()),
            stream_arn=self._holds.stream_arn,
        )
