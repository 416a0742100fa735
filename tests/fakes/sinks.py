"""A recording sink with scripted failures and held deliveries (the reader's tests).

The in-memory dead-letter store is `tests.fakes.notify.MemoryDeadLetters`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from worker.core.errors import DeliveryError
from worker.core.models import Notification


@dataclass
class _Gate:
    entered: threading.Event
    release: threading.Event


class RecordingSink:
    """Stands in for a `worker.delivery.sinks.Sink`: records every attempt and every delivery.

    `fail(id)` makes deliveries of that notification id raise DeliveryError (for
    `times` attempts, or until `heal`); `hold(id)` blocks its delivery until the test
    releases it, to have work in flight at an exact moment.
    """

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.local = False  # a remote sink: the dispatcher runs it on the pool
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int | None, bool]] = {}
        self._gates: dict[str, _Gate] = {}
        self.attempts: list[Notification] = []
        self.sent: list[Notification] = []
        self.closed = False

    def fail(self, notification_id: str, times: int | None = None, transient: bool = False) -> None:
        with self._lock:
            self._failures[notification_id] = (times, transient)

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()

    def hold(self, notification_id: str) -> _Gate:
        gate = _Gate(threading.Event(), threading.Event())
        with self._lock:
            self._gates[notification_id] = gate
        return gate

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.attempts.append(notification)
            gate = self._gates.pop(notification.id, None)
        if gate is not None:
            gate.entered.set()
            assert gate.release.wait(10), "the test never released a held delivery"
        with self._lock:
            left, transient = self._failures.get(notification.id, (0, False))
            if left is None or left > 0:
                if left is not None:
                    self._failures[notification.id] = (left - 1, transient)
                raise DeliveryError(f"scripted failure of {notification.id}", transient)
            self.sent.append(notification)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def sent_ids(self) -> list[str]:
        with self._lock:
            return [n.id for n in self.sent]

    def sent_sequences(self) -> list[str]:
        with self._lock:
            return [n.sequence_number for n in self.sent]
