"""An in-memory stand-in for the app lease (`worker.state.lease.Lease`), for unit tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from worker.core.errors import LeaseLostError
from worker.core.runtime import Signal


class LeaseBoard:
    """The lease row of the state table, in memory: who holds it and until when.

    Shared by the `FakeLease`s of several replicas, so a test can hand the lease over
    (`steal`) and see the old holder lose it.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.owner: str | None = None
        self.expires_s = 0.0
        self.attempts = 0  # take() calls: a standby polls it

    def take(self, owner: str, duration_s: float) -> bool:
        with self._lock:
            self.attempts += 1
            now = self._clock()
            if self.owner not in (None, owner) and self.expires_s >= now:
                return False
            self.owner, self.expires_s = owner, now + duration_s
            return True

    def extend(self, owner: str, duration_s: float) -> bool:
        with self._lock:
            if self.owner != owner:
                return False
            self.expires_s = self._clock() + duration_s
            return True

    def drop(self, owner: str) -> None:
        with self._lock:
            if self.owner == owner:
                self.owner, self.expires_s = None, 0.0

    def steal(self, owner: str, duration_s: float = 3600.0) -> None:
        """Another replica takes the lease (ours expired while we were paused)."""
        with self._lock:
            self.owner, self.expires_s = owner, self._clock() + duration_s

    def holder(self) -> str | None:
        with self._lock:
            return self.owner if self.expires_s >= self._clock() else None


class FakeLease:
    """Stands in for `worker.state.lease.Lease`: the same methods and attributes, on a board.

    The real lease makes conditional writes to DynamoDB; this one applies the same
    conditions to a `LeaseBoard`. `renew` raises LeaseLostError once another owner
    holds the board, as the real conditional update does.
    """

    def __init__(
        self, board: LeaseBoard | None = None, owner: str = "replica-a", duration_s: float = 3.0
    ) -> None:
        self.board = board or LeaseBoard()
        self.owner = owner
        self.duration_s = duration_s
        self.held = False
        self.maybe_held = False  # the fake's writes are never ambiguous
        self.valid_until_s = float("inf")  # renewals are instant: never lapsing
        self.releases = 0

    def try_acquire(self) -> bool:
        self.held = self.board.take(self.owner, self.duration_s)
        return self.held

    def renew(self) -> None:
        if not self.board.extend(self.owner, self.duration_s):
            self.held = False
            raise LeaseLostError("the app lease was taken by another replica")

    def release(self) -> None:
        if not self.held:
            return
        self.board.drop(self.owner)
        self.held = False
        self.releases += 1

    def current_owner(self) -> str | None:
        return self.board.holder()

    def still_ours(self) -> bool:
        return self.board.holder() == self.owner

    def fence(self) -> dict[str, Any]:
        return {"ConditionCheck": {"owner": self.owner}}

    def wait_for(self, stop: Signal, poll_s: float = 0.01) -> bool:
        while not stop.is_set():
            if self.try_acquire():
                return True
            stop.wait(poll_s)
        return False
