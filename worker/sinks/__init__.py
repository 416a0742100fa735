"""Notification sinks: one module per target, all behind the `Sink` protocol."""

from __future__ import annotations

from typing import Protocol

from worker.models import Notification


class Sink(Protocol):
    """Delivers one notification or raises DeliveryError (transient or permanent)."""

    name: str
    # True for sinks that deliver in-process and return at once (the log sink): the
    # dispatcher runs them inline and their own output line stands for `notification.sent`.
    local: bool

    def send(self, notification: Notification) -> None: ...

    def flush(self) -> None:
        """Make every send so far durable; called before a batch is checkpointed."""

    def close(self) -> None: ...
