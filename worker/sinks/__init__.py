"""Notification sinks: one module per target, all behind the `Sink` protocol."""

from __future__ import annotations

from typing import Protocol

from worker.models import Notification


class Sink(Protocol):
    """Delivers one notification or raises DeliveryError (transient or permanent)."""

    name: str

    def send(self, notification: Notification) -> None: ...

    def close(self) -> None: ...
