"""The log sink: one JSON line on stdout per notification, every body field included."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from worker.models import Notification


class LogSink:
    name = "log"
    local = True

    def __init__(self, write_json_line: Callable[[str], None] | None = None) -> None:
        """`write_json_line`, when given, writes a pre-rendered JSON line to the log stream.

        That is the fast path for `ORDERSTREAM_LOG_FORMAT=json`: rendering the line
        here costs a quarter of a structlog call, and lines are written once per batch
        (`flush`) instead of one write and flush each, which was half the CPU of a
        backlog drain. The line has the same fields as structlog's.
        """
        self._write = write_json_line
        self._lock = threading.Lock()
        self._pending: list[str] = []
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
        if self._write is None:
            self._log.info("notification", **notification.body())
            return
        line = notification.body()
        line["event"] = "notification"
        line["level"] = "info"
        line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        rendered = json.dumps(line)
        with self._lock:
            self._pending.append(rendered)

    def flush(self) -> None:
        """Write the batch's lines in one call: the dispatcher flushes before the
        checkpoint, so a line is on stdout before its record counts as done."""
        if self._write is None:
            return
        with self._lock:
            lines, self._pending = self._pending, []
        if lines:
            self._write("\n".join(lines))

    def close(self) -> None:
        self.flush()
