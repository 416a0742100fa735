"""One structlog configuration for both CLIs: JSON lines, or console text on a TTY."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = frozenset({"secret", "webhook_secret", "aws_secret_access_key", "password"})


def _redact(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Belt and braces: a field that names a secret is never printed as given."""
    for key in event_dict.keys() & _SECRET_KEYS:
        event_dict[key] = "***"
    return event_dict


def log_from_signal_handler(emit: Callable[..., Any], event: str, **fields: Any) -> None:
    """Log from a signal handler without deadlocking: the handler runs on the main
    thread, which may be inside a log write holding the (non-reentrant) stream lock at
    that very moment, so a thread writes the line instead."""
    threading.Thread(target=emit, args=(event,), kwargs=fields, daemon=True).start()


# What configure() chose, for json_line_writer(): structlog's own config is global too.
_json_stream: list[TextIO] = []


class PipeGuard:
    """The log stream, minding a reader that went away (`worker run | head`, a log
    collector that died): the first failed write runs the `on_closed` callbacks (the
    worker stops gracefully) and the rest of the output is dropped, instead of a
    BrokenPipeError killing whichever thread happened to log."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed = False
        self.on_closed: list[Callable[[], None]] = []

    def write(self, text: str) -> int:
        """Write through; once the reader is gone, drop the text and report it written."""
        if self.closed:
            return len(text)
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError):  # ValueError: the file object was closed
            self._close()
            return len(text)

    def flush(self) -> None:
        """Flush through; a reader gone closes the guard instead of raising."""
        if self.closed:
            return
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            self._close()

    def isatty(self) -> bool:
        """The stream's own answer (`auto` renders for a person on a TTY)."""
        return self._stream.isatty()

    def _close(self) -> None:
        self.closed = True
        for callback in self.on_closed:
            callback()


guard: list[PipeGuard] = []  # the guard of the current configuration, if any


def _compact_json(obj: Any, **kwargs: Any) -> str:
    """JSON lines without spaces, the way orjson writes the log sink's lines."""
    return json.dumps(obj, separators=(",", ":"), **kwargs)


def json_line_writer() -> Callable[[str], None] | None:
    """A writer of pre-rendered JSON lines to the log stream, when the format is JSON.

    It writes through structlog's WriteLogger, as every log line does: one lock per
    file, and each line (or block of lines) is one write of text plus newline, so no
    line is split, not even between processes sharing the stream.
    """
    if not _json_stream:
        return None
    return structlog.WriteLogger(_json_stream[0]).msg


def output_closed() -> bool:
    """Whether the log stream's reader went away: nothing written now reaches anyone."""
    return bool(guard) and guard[0].closed


def is_console(fmt: str, stream: TextIO | None = None) -> bool:
    """Whether `fmt` renders for a person: `console`, or `auto` on a TTY."""
    return fmt == "console" or (fmt == "auto" and (stream or sys.stdout).isatty())


def wants_color(stream: TextIO) -> bool:
    """Colours on a TTY, unless NO_COLOR is set to anything but "" (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once per process.

    `fmt` is `json`, `console`, or `auto` (console when the stream is a TTY).
    """
    out = stream or sys.stdout
    if stream is None:
        out = PipeGuard(out)
        guard[:] = [out]
    if fmt == "auto":
        fmt = "console" if is_console(fmt, out) else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=wants_color(out))
        if fmt == "console"
        else structlog.processors.JSONRenderer(_compact_json)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # WriteLogger, not PrintLogger: print() writes text and newline in two calls,
        # which lets another process's line land in between.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _json_stream[:] = [out] if fmt == "json" else []
