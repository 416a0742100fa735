"""The log sink: one JSON line on stdout per notification, carrying every body field."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from tests.fakes.notify import notification
from worker.core.models import Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks.log import PIPE_BUF, LogSink
from writer import logs

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


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


# -- what "one line" guarantees when several processes share stdout ----------------------
#
# POSIX makes a write of at most PIPE_BUF (4096) bytes to a pipe atomic. The sink joins
# lines into writes that stay within that, and writes a longer line alone, in one call:
# lines up to 4 KiB never interleave, even with ORDERSTREAM_PROCESSES > 1. A longer line
# (only from items other clients wrote, e.g. a 5 KB Status) is still one write call,
# which the kernel may split: docs/worker.md, "The notification", the log sink.


def recording_sink() -> tuple[LogSink, list[str]]:
    writes: list[str] = []
    return LogSink(writes.append), writes


def test_lines_are_joined_into_writes_that_fit_pipe_buf() -> None:
    sink, writes = recording_sink()
    changes = [notification(f"ORD{n}", n) for n in range(200)]
    for change in changes:
        sink.send(change)
    sink.flush()
    assert len(writes) > 1  # 200 lines do not fit one atomic write
    assert all(len(chunk.encode()) + 1 <= PIPE_BUF for chunk in writes)
    ids = [json.loads(line)["id"] for chunk in writes for line in chunk.split("\n")]
    assert ids == [c.id for c in changes]


def test_a_line_longer_than_pipe_buf_is_one_write_of_its_own() -> None:
    sink, writes = recording_sink()
    huge = notification("ORD2", 2, new="R" * 10_000)  # a Status another client wrote
    for change in (notification("ORD1", 1), huge, notification("ORD3", 3)):
        sink.send(change)
    sink.flush()
    assert len(writes) == 3
    assert json.loads(writes[1])["new_status"] == "R" * 10_000
    assert "\n" not in writes[1]


CHILD = """
import sys
from tests.fakes.notify import notification
from worker.delivery.sinks.log import LogSink
from writer import logs

logs.configure("json", "info")
sink = LogSink(logs.json_line_writer())
tag = sys.argv[1]
for n in range(300):
    # about 3.9 KB a line with its fields: two would not fit one atomic write
    sink.send(notification(f"ORD{tag}{n}", n, new=tag * 3600))
    if n % 7 == 0:
        sink.flush()
sink.close()
"""


def test_lines_of_processes_sharing_one_pipe_never_interleave() -> None:
    read_end, write_end = os.pipe()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, tag], stdout=write_end, cwd=ROOT, env=child_env()
        )
        for tag in "ABCD"
    ]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0, 0]
    lines = output.decode().splitlines()
    assert len(lines) == 4 * 300
    assert max(len(line.encode()) + 1 for line in lines) <= PIPE_BUF
    statuses = [json.loads(line)["new_status"] for line in lines]  # each line whole
    assert sorted({s[0] for s in statuses}) == ["A", "B", "C", "D"]
    assert all(s == s[0] * 3600 for s in statuses)


def test_lines_a_failed_write_did_not_write_go_back_for_the_next_flush() -> None:
    """Found by review: a write error other than a closed pipe (ENOSPC, EIO) dropped the
    lines taken for it, another shard's included; a later flush then succeeded and its
    checkpoint passed lines never written."""
    writes: list[str] = []
    failures = [OSError(28, "No space left on device")]

    def write(text: str) -> None:
        if failures:
            raise failures.pop()
        writes.append(text)

    sink = LogSink(write)
    changes = [notification("ORD1", 1), notification("ORD2", 2)]
    for change in changes:
        sink.send(change)
    with pytest.raises(OSError, match="No space left"):
        sink.flush()

    sink.flush()

    ids = [json.loads(line)["id"] for chunk in writes for line in chunk.split("\n")]
    assert ids == [c.id for c in changes]


def test_a_retried_chunk_sends_again_what_a_failed_flush_never_wrote() -> None:
    """Found by review: the dispatcher remembered a log line as sent while it was only
    buffered; when the flush failed and the chunk was retried, nothing was sent again."""
    writes: list[str] = []
    failures = [OSError(5, "Input/output error")]

    def write(text: str) -> None:
        if failures:
            raise failures.pop()
        writes.append(text)

    sink = LogSink(write)
    dispatcher = Dispatcher(
        sinks={"log": sink},
        rules=parse_rules(None, None, ("log",)),
        policy=RetryPolicy(max_attempts=1),
        dlq=None,
        stats=Stats(),
    )
    batch = [notification("ORD1", 1)]
    with pytest.raises(OSError, match="Input/output error"):
        dispatcher.dispatch(batch)

    assert dispatcher.dispatch(batch) == [Outcome.DELIVERED]

    assert [json.loads(line)["id"] for chunk in writes for line in chunk.split("\n")] == [
        batch[0].id,
        batch[0].id,  # written once it could be: at least once, the same id
    ]
