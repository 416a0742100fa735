"""One reader's view of the orders held per sink behind a dead letter.

Order per (order, sink) must survive batches, restarts and takeovers, so the truth is
in the state table (`DeadLetterStore`'s hold counters); this book caches it for one
shard reader (loaded when first needed, refreshed every minute so a redrive releases
an order without a restart) and adds the holds its own dead letters create at once.
A stale entry only errs on the safe side: a change is held that could have been sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from worker.core.models import Notification
from worker.state.dlq import DeadLetter, HoldKey, HoldStore, table_of

log = structlog.get_logger()
REFRESH_S = 60.0


class HoldBook:
    """Which (order, sink) pairs of one stream's table are held, and dead-lettering."""

    def __init__(
        self,
        *,
        store: HoldStore | None,
        stream_arn: str,
        monotonic: Callable[[], float],
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.stream_arn = stream_arn
        self._store = store
        self._table = table_of(stream_arn)
        self._monotonic = monotonic
        self._refresh_s = refresh_s
        self._held: set[HoldKey] = set()
        self._lock = threading.Lock()  # never held over a read of the store
        # Holds noted here, numbered, kept while a refresh that began before may miss them.
        self._noted: list[tuple[int, HoldKey]] = []
        self._next_note = 0
        self._reading: list[int] = []  # the note number at which each running read began
        self._loaded_at: float | None = None

    @property
    def enabled(self) -> bool:
        """False without a DLQ: nothing can be dead-lettered, so nothing is held."""
        return self._store is not None

    def key(self, notification: Notification, sink: str) -> HoldKey:
        """The hold a dead letter or a parked change of `notification` for `sink` raises."""
        return HoldKey(self._table, notification.user_id, notification.order_id, sink)

    def is_held(self, notification: Notification, sink: str) -> bool:
        """Raises the store's error if the holds cannot be read: the change then stays
        unresolved (it must not be sent past a hold we cannot see)."""
        if self._store is None:
            return False
        now = self._monotonic()
        with self._lock:
            stale = self._loaded_at is None or now - self._loaded_at >= self._refresh_s
            # The first load: every caller reads (an empty book must not answer). Later,
            # one refresh at a time; meanwhile the others answer from the book, which
            # errs on the safe side (a hold released meanwhile still looks held).
            refresh = stale and (self._loaded_at is None or not self._reading)
            if refresh:
                mark = self._next_note
                self._reading.append(mark)
        if refresh:
            self._refresh(mark, now)
        with self._lock:
            return self.key(notification, sink) in self._held

    def _refresh(self, mark: int, now: float) -> None:
        """Read the store with no lock held: concurrent deliveries keep going. A hold
        noted after the read began may be missing from it, so it is carried over."""
        try:
            fresh = self._store.held(self.stream_arn) if self._store else set()
        except BaseException:
            with self._lock:
                self._reading.remove(mark)
            raise
        with self._lock:
            self._reading.remove(mark)
            self._held = fresh | {key for number, key in self._noted if number >= mark}
            # Notes before every running read's start are in every read now: let them go.
            oldest = min([mark, *self._reading])
            self._noted = [(n, key) for n, key in self._noted if n >= oldest]
            self._loaded_at = now

    def put(self, letter: DeadLetter) -> bool:
        """Dead-letter `letter` and hold its order; a replay of one already there is a
        no-op (False). Raises if the store does."""
        if self._store is None:
            raise RuntimeError("no dead-letter store")
        fresh = self._store.put(letter)
        if letter.hold is not None:
            self.note(letter.hold)
        return fresh

    def note(self, hold: HoldKey) -> None:
        """A hold just written (a dead letter, a change parked in the retry lane): held
        from now, whatever a refresh running meanwhile reads."""
        with self._lock:
            self._held.add(hold)
            self._noted.append((self._next_note, hold))
            self._next_note += 1
