"""The log sink: one JSON line on stdout per notification, carrying every body field."""

from __future__ import annotations

import io
import json
import random
import sys
import threading
import time
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


def test_concurrent_flushes_keep_each_orders_lines_in_order() -> None:
    """Shard threads share one log sink and flush concurrently; one flush can take
    another thread's lines. A later take must never reach stdout first, or an order's
    changes would appear out of sequence."""
    written: list[str] = []
    jitter = random.Random(1)

    def slow_write(chunk: str) -> None:
        time.sleep(jitter.uniform(0, 0.002))  # a write of varying speed, not synchronisation
        written.extend(chunk.split("\n"))

    sink = LogSink(slow_write)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # preempt threads often, as busy shard threads are

    def shard(order: str) -> None:
        for seq in range(1, 201):
            sink.send(notification(order_id=order, seq=seq))
            if seq % 3 == 0:
                sink.flush()

    threads = [threading.Thread(target=shard, args=(f"O{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    sink.flush()
    for i in range(4):
        bodies = [json.loads(line) for line in written]
        seqs = [int(b["sequence_number"]) for b in bodies if b["order_id"] == f"O{i}"]
        assert len(seqs) == 200
        assert seqs == sorted(seqs)
