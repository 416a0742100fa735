"""One reader's view of the orders held per sink behind a dead letter.

Order per (order, sink) must survive batches, restarts and takeovers, so the truth is
in the state table (`DeadLetterStore`'s hold counters); this book caches it for one
shard reader (loaded when first needed, refreshed every minute so a redrive releases
an order without a restart) and adds the holds its own dead letters create at once.
A stale entry only errs on the safe side: a change is held that could have been sent.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from worker.dlq import DeadLetter, HoldKey, HoldStore, table_of
from worker.models import Notification

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
        self._added: list[HoldKey] = []  # holds written while a refresh may be reading
        self._loaded_at: float | None = None

    @property
    def enabled(self) -> bool:
        """False without a DLQ: nothing can be dead-lettered, so nothing is held."""
        return self._store is not None

    def key(self, notification: Notification, sink: str) -> HoldKey:
        return HoldKey(self._table, notification.user_id, notification.order_id, sink)

    def is_held(self, notification: Notification, sink: str) -> bool:
        """Raises the store's error if the holds cannot be read: the change then stays
        unresolved (it must not be sent past a hold we cannot see)."""
        if self._store is None:
            return False
        now = self._monotonic()
        if self._loaded_at is None or now - self._loaded_at >= self._refresh_s:
            # No lock held over the read: concurrent deliveries keep going. A hold added
            # meanwhile may be missing from the read, so it is carried over.
            mark = len(self._added)
            fresh = self._store.held(self.stream_arn)
            self._held = fresh | set(self._added[mark:])
            del self._added[:mark]
            self._loaded_at = now
        return self.key(notification, sink) in self._held

    def put(self, letter: DeadLetter) -> None:
        """Dead-letter `letter` and hold its order; a replay of one already there is a
        no-op. Raises if the store does."""
        if self._store is None:
            raise RuntimeError("no dead-letter store")
        self._store.put(letter)
        if letter.hold is not None:
            self.note(letter.hold)

    def note(self, hold: HoldKey) -> None:
        """A hold written elsewhere (a change parked in the retry lane): held from now."""
        self._held.add(hold)
        self._added.append(hold)
