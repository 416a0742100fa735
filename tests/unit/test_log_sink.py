"""The log sink: one JSON line on stdout per notification, carrying every body field."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from tests.fakes.notify import notification
from worker.sinks.log import LogSink
from writer import logs


@pytest.fixture
def stdout() -> Iterator[io.StringIO]:
    """structlog configured as `worker run` does it, writing to a buffer; reset after."""
    buffer = io.StringIO()
    yield buffer
    structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_line_with_every_body_field(stdout: io.StringIO) -> None:
    logs.configure("json", "info", stream=stdout)
    change = notification("ORD1001", 3, old=None, new="Pending")
    LogSink().send(change)
    (line,) = lines(stdout)
    assert {k: line[k] for k in change.body()} == change.body()
    assert line["type"] == "order.status_changed"
    assert line["old_status"] is None
    assert line["event"] == "notification"


def test_notifications_are_written_whatever_the_log_level(stdout: io.StringIO) -> None:
    """ORDERSTREAM_LOG_LEVEL=error quiets diagnostics, never the log sink's output."""
    logs.configure("json", "error", stream=stdout)
    LogSink().send(notification("ORD1", 1))
    structlog.get_logger().info("diagnostic.noise")
    assert [line["id"] for line in lines(stdout)] == [notification("ORD1", 1).id]


def test_one_line_per_notification_in_order(stdout: io.StringIO) -> None:
    logs.configure("json", "info", stream=stdout)
    sink = LogSink()
    changes = [notification("ORD1", seq) for seq in range(3)]
    for change in changes:
        sink.send(change)
    sink.close()
    assert [line["id"] for line in lines(stdout)] == [c.id for c in changes]


def test_the_log_sink_is_seen_by_capture_logs() -> None:
    with capture_logs() as captured:
        LogSink().send(notification())
    (event,) = captured
    assert event["event"] == "notification"
    assert event["order_id"] == "ORD1"
