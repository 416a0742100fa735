"""The processor process as the KCL daemon sees it: amazon-kclpy's protocol, line by line.

`python -m worker kcl-processor` is what the daemon starts per shard. This plays the daemon:
actions on stdin, status replies and checkpoint requests on stdout (and nothing else
there), notifications and logs as JSON on stderr. No AWS call is made: the log sink
needs none, and the endpoint points at a closed loopback port all the same.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import SAFE_AWS_ENV, MotoServer
from tests.dynamodb_helpers import client_for
from tests.fakes.records import order_record, profile_record
from worker.state.statetable import ensure_state_table

pytest.importorskip("amazon_kclpy", reason="amazon-kclpy is installed by `make fleet`")

SHARD = "shardId-00000001700000000000-aaaaaaaa"


def record(raw: dict[str, Any], sequence: str) -> dict[str, Any]:
    """A processRecords entry as the MultiLangDaemon writes it (JsonFriendlyRecord)."""
    adapter_json = {
        **raw,
        "eventID": f"ev{sequence}",
        "dynamodb": {
            **raw["dynamodb"],
            "SequenceNumber": sequence,
            "ApproximateCreationDateTime": 1_714_557_600_000,
        },
    }
    return {
        "action": "record",
        "data": base64.b64encode(json.dumps(adapter_json).encode()).decode(),
        "partitionKey": sequence,
        "sequenceNumber": sequence,
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": 1_714_557_600_000,
    }


class Child:
    """The processor process with the daemon's view of its three streams."""

    def __init__(self, endpoint: str) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTREAM_")}
        env = {
            **base,
            **SAFE_AWS_ENV,
            # The state table (DLQ and holds) on a moto server: every change asks whether
            # its order is held behind a dead letter before it is sent.
            "AWS_ENDPOINT_URL": endpoint,
            "ORDERSTREAM_SINKS": "log",
            "ORDERSTREAM_LOG_LEVEL": "info",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "kcl-processor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout_lines: list[str] = []
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_events: list[dict[str, Any]] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout_lines.append(line)
            if line.strip():
                self._messages.put(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_events.append(json.loads(line))  # every line is a JSON event

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def expect(self) -> dict[str, Any]:
        return self._messages.get(timeout=20)

    def reply_checkpoint(self, request: dict[str, Any], error: str | None = None) -> None:
        reply = {
            "action": "checkpoint",
            "sequenceNumber": request["sequenceNumber"],
            "subSequenceNumber": request.get("subSequenceNumber"),
        }
        if error:
            reply["error"] = error
        self.send(reply)

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()  # what the daemon does once a shard is shut down
        code = self.process.wait(timeout=20)
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.stderr_events if e.get("event") == name]


@pytest.fixture
def child(moto_server: MotoServer) -> Iterator[Child]:
    ensure_state_table(client_for(moto_server.url), "orderstream-state")
    child = Child(moto_server.url)
    yield child
    if child.process.poll() is None:
        child.process.kill()
        child.process.wait(timeout=10)
    for stream in (child.process.stdin, child.process.stdout, child.process.stderr):
        if stream is not None:
            stream.close()


def initialize(child: Child) -> None:
    child.send(
        {
            "action": "initialize",
            "shardId": SHARD,
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
        }
    )
    assert child.expect() == {"action": "status", "responseFor": "initialize"}


def process(child: Child, records: list[dict[str, Any]]) -> None:
    child.send({"action": "processRecords", "records": records, "millisBehindLatest": 0})


def test_a_shard_from_initialize_to_lease_loss(child: Child) -> None:
    initialize(child)
    process(
        child,
        [
            record(order_record("INSERT", "USR001", "ORD1", "Pending"), "101"),
            record(profile_record("INSERT", "USR001"), "102"),
            record(order_record("MODIFY", "USR001", "ORD1", "Processing", "Pending"), "103"),
        ],
    )

    # One checkpoint for the batch, at its last record; a throttled one is asked again.
    first = child.expect()
    assert first == {"action": "checkpoint", "sequenceNumber": "103", "subSequenceNumber": None}
    child.reply_checkpoint(first, error="ThrottlingException")
    again = child.expect()
    assert again == first
    child.reply_checkpoint(again)
    assert child.expect() == {"action": "status", "responseFor": "processRecords"}

    # Graceful handoff: the last position again, then the lease goes without one.
    child.send({"action": "shutdownRequested"})
    handoff = child.expect()
    assert handoff["action"] == "checkpoint"
    assert handoff["sequenceNumber"] == "103"
    child.reply_checkpoint(handoff)
    assert child.expect() == {"action": "status", "responseFor": "shutdownRequested"}
    child.send({"action": "leaseLost"})
    assert child.expect() == {"action": "status", "responseFor": "leaseLost"}
    assert child.close() == 0

    # stdout carried the protocol and nothing else.
    for line in child.stdout_lines:
        assert not line.strip() or json.loads(line)["action"] in ("status", "checkpoint")
    notifications = child.events("notification")
    assert [(n["order_id"], n["old_status"], n["new_status"]) for n in notifications] == [
        ("ORD1", None, "Pending"),
        ("ORD1", "Pending", "Processing"),
    ]
    assert notifications[0]["type"] == "order.status_changed"
    assert notifications[0]["id"] == "ev101"
    assert notifications[0]["shard_id"] == SHARD
    assert notifications[0]["occurred_at"] == "2024-05-01T10:00:00.000Z"
    (retry,) = [e for e in child.events("stream.backoff") if e["action"] == "checkpoint"]
    assert retry["error"] == "ThrottlingException"
    assert child.events("kcl.shard.lease_lost")
    assert child.events("kcl.processor.stopped")[0]["notifications"] == 2


def test_a_shard_end_checkpoints_the_end_of_the_shard(child: Child) -> None:
    initialize(child)
    process(child, [record(order_record("INSERT", "USR002", "ORD2", "Pending"), "201")])
    request = child.expect()
    child.reply_checkpoint(request)
    assert child.expect() == {"action": "status", "responseFor": "processRecords"}

    child.send({"action": "shardEnded"})
    end = child.expect()
    assert end == {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}
    child.reply_checkpoint(end)
    assert child.expect() == {"action": "status", "responseFor": "shardEnded"}
    assert child.close() == 0
    assert child.events("kcl.shard.ended")


def test_a_lost_lease_while_checkpointing_stops_the_batch(child: Child) -> None:
    initialize(child)
    process(child, [record(order_record("INSERT", "USR003", "ORD3", "Pending"), "301")])
    child.reply_checkpoint(child.expect(), error="ShutdownException")
    assert child.expect() == {"action": "status", "responseFor": "processRecords"}

    # Later batches are left to the new owner: no delivery, no checkpoint.
    process(child, [record(order_record("INSERT", "USR003", "ORD4", "Pending"), "302")])
    assert child.expect() == {"action": "status", "responseFor": "processRecords"}
    child.send({"action": "leaseLost"})
    assert child.expect() == {"action": "status", "responseFor": "leaseLost"}
    assert child.close() == 0
    assert [n["order_id"] for n in child.events("notification")] == ["ORD3"]
    assert child.events("kcl.batch.ignored")


def test_sigterm_stops_the_processor_delivering(child: Child) -> None:
    """S2: the processor ignored SIGTERM (only the orphan watch set its stop), so retry
    waits were not cut short and a sink outage overran the grace period. Now a SIGTERM
    (a container stop reaches every process) stops delivering at once: no attempt, no
    checkpoint, the batch left for the lease's next owner."""
    initialize(child)
    child.process.send_signal(signal.SIGTERM)
    process(child, [record(order_record("INSERT", "USR001", "ORD9", "Pending"), "201")])

    assert child.expect() == {"action": "status", "responseFor": "processRecords"}
    assert child.close() == 0
    assert child.events("notification") == []  # not attempted
    assert not any(
        json.loads(line)["action"] == "checkpoint" for line in child.stdout_lines if line.strip()
    )
