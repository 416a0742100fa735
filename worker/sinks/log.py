"""The log sink: one JSON line on stdout per notification, every body field included."""

from __future__ import annotations

import logging

import structlog

from worker.models import Notification


class LogSink:
    name = "log"

    def __init__(self) -> None:
        # Notifications are the sink's output, not diagnostics: ORDERSTREAM_LOG_LEVEL
        # (say `warning`) must not filter them out while they count as sent.
        self._log = structlog.wrap_logger(
            None,
            wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
            logger_factory_args=("orderstream.notifications",),
        )

    def send(self, notification: Notification) -> None:
        # `event` names the log line; the body's own fields follow unchanged, so a log
        # pipeline can consume notifications as they are.
        self._log.info("notification", **notification.body())

    def close(self) -> None:
        return None
