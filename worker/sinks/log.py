"""The log sink: one JSON line on stdout per notification, every body field included."""

from __future__ import annotations

import structlog

from worker.models import Notification


class LogSink:
    name = "log"

    def __init__(self) -> None:
        self._log = structlog.get_logger("orderstream.notifications")

    def send(self, notification: Notification) -> None:
        # `event` names the log line; the body's own fields follow unchanged, so a log
        # pipeline can consume notifications as they are.
        self._log.info("notification", **notification.body())

    def close(self) -> None:
        return None
