"""An in-memory CheckpointStore, fenced by a FakeLease like the real one is by the lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from tests.fakes.lease import FakeLease
from worker.core.errors import LeaseLostError
from worker.core.models import Shard
from worker.state.checkpoints import Checkpoint, Meeting


class MemoryCheckpointStore:
    """Stands in for `worker.state.checkpoints.DynamoCheckpointStore`.

    Keeps the latest checkpoint per shard and every save in `history` (in order), so
    a test can check that a checkpoint never passed an unresolved record. With a
    `lease`, a save by a replica that no longer holds it raises LeaseLostError, as the
    real store's fenced transaction does. `before_load` runs at each `load_all` with
    the snapshot it is about to return; `on_save` at each accepted save.

    Checkpoints are kept by shard with the stream each was saved under (`load_all` of a
    stream returns its own, and those seeded without one), and the stream meetings as
    the real store keeps them.
    """

    def __init__(self, lease: FakeLease | None = None, initial: Iterable[Checkpoint] = ()) -> None:
        self._lock = threading.Lock()
        self._lease = lease
        self._checkpoints = {c.shard_id: c for c in initial}
        self.history: list[Checkpoint] = []
        self.refused = 0
        self.before_load: Callable[[dict[str, Checkpoint]], None] | None = None
        self.on_save: Callable[[Checkpoint], None] | None = None
        self.meetings: dict[str, Meeting] = {}
        self._stream_of: dict[str, str] = {}  # shard id -> the stream it was saved under

    def meet(
        self,
        stream_arn: str,
        start: str,
        shards: Sequence[Shard],
        trimmed: Callable[[Shard], str | None] = lambda _shard: None,
    ) -> Meeting:
        with self._lock:
            if stream_arn not in self.meetings:
                self.meetings[stream_arn] = Meeting.first(
                    start=start,
                    shards=shards,
                    firsts={s.shard_id: trimmed(s) for s in shards},  # asked once per shard
                    met_at_s=time.time(),
                )
            return self.meetings[stream_arn]

    def met_streams(self, table_arn: str) -> dict[str, bool]:
        with self._lock:
            return {
                arn: meeting.finished
                for arn, meeting in self.meetings.items()
                if arn.startswith(table_arn + "/stream/")
            }

    def finish_stream(self, stream_arn: str) -> None:
        with self._lock:
            if stream_arn in self.meetings:
                self.meetings[stream_arn] = replace(self.meetings[stream_arn], finished=True)

    def load_all(self, stream_arn: str = "") -> dict[str, Checkpoint]:
        with self._lock:
            snapshot = {
                shard: c
                for shard, c in self._checkpoints.items()
                if self._stream_of.get(shard, "") in ("", stream_arn)
            }
        if self.before_load is not None:
            self.before_load(snapshot)
        return snapshot

    def save(self, stream_arn: str, checkpoint: Checkpoint | None = None) -> None:
        if checkpoint is None:  # save(checkpoint): a test seeding the store
            checkpoint, stream_arn = stream_arn, ""  # type: ignore[assignment]  # save(checkpoint) seeds: it arrives as stream_arn
        assert checkpoint is not None
        with self._lock:
            if self._lease is not None and not self._lease.still_ours():
                self.refused += 1
                raise LeaseLostError("checkpoint refused: the app lease is not ours")
            self._checkpoints[checkpoint.shard_id] = checkpoint
            self._stream_of[checkpoint.shard_id] = stream_arn
            self.history.append(checkpoint)
        if self.on_save is not None:
            self.on_save(checkpoint)

    def fenced_by(self, lease: FakeLease) -> MemoryCheckpointStore:
        """The same checkpoints, as seen by another replica (fenced by its own lease)."""
        view = MemoryCheckpointStore(lease)
        view._lock, view._checkpoints, view.history = self._lock, self._checkpoints, self.history
        view.meetings, view._stream_of = self.meetings, self._stream_of
        return view

    def get(self, shard_id: str) -> Checkpoint | None:
        with self._lock:
            return self._checkpoints.get(shard_id)

    def saved(self, shard_id: str) -> list[Checkpoint]:
        with self._lock:
            return [c for c in self.history if c.shard_id == shard_id]
