"""Notification sinks: one module per target, all behind the `Sink` protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from worker.core.errors import DeliveryError
from worker.core.models import Notification
from worker.core.runtime import Signal


class Sink(Protocol):
    """Delivers one notification or raises DeliveryError (transient or permanent)."""

    name: str
    # True for sinks that deliver in-process and return at once (the log sink): the
    # dispatcher runs them inline and their own output line stands for `notification.sent`.
    local: bool

    def send(self, notification: Notification) -> None:
        """Deliver one; raises DeliveryError, transient (retried) or permanent (dead-lettered)."""
        ...

    def flush(self) -> None:
        """Make every send so far durable; called before a batch is checkpointed."""

    def close(self) -> None:
        """Release what the sink holds (connections, buffered lines) at shutdown."""
        ...


@runtime_checkable
class Paced(Protocol):
    """A sink with a rate limit: callers wait for their turn with their own stop signal,
    so a stop (SIGTERM, a lost lease) ends the wait and no attempt follows."""

    def pace(self, stop: Signal) -> bool:
        """Everything before the call that may wait: False if `stop` was set meanwhile
        (do not send). May raise DeliveryError, as `send` would, when the sink refuses."""
        ...


def send_once(sink: Sink, notification: Notification) -> None:
    """One attempt; anything but a DeliveryError is the sink refusing for good."""
    try:
        sink.send(notification)
    except DeliveryError:
        raise
    except Exception as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=False) from exc
