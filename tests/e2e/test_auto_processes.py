"""`ORDERSTREAM_PROCESSES=auto` (the default) on a multi-shard stream: reader processes
up to one per core, with the single-process mode's promises at a stop and a crash.

moto serves one shard per stream, so the stream here is the canned multi-shard double
of the drain bench (tests/bench/canned_streams.py), served from a thread; the state
table lives on the moto server as usual. The webhook receiver holds every request after
the first HELD_AFTER until the test releases it, so a stop or a kill always lands while
deliveries are in flight, in the middle of the drain.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.bench import dataset
from tests.bench.canned_streams import CannedServer
from tests.conftest import wait_until
from tests.fakes.processes import ScriptProcess, reader_processes_of, running
from tests.fakes.receiver import Receiver, Reply, Request
from worker.poller.multiproc import usable_cores

StartWorker = Callable[..., ScriptProcess]
SHARDS, RECORDS = 4, 150
HELD_AFTER = 150

pytestmark = pytest.mark.slow


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    with CannedServer(shards=SHARDS, records=RECORDS) as server:
        yield server


@pytest.fixture
def gate(receiver: Receiver) -> Iterator[threading.Event]:
    """Requests after the first HELD_AFTER wait until the event is set."""
    released = threading.Event()
    seen = iter(range(10**9))

    def hold(_request: Request) -> Reply | None:
        if next(seen) >= HELD_AFTER:
            released.wait(60)
        return None

    receiver.respond_with(hold)
    yield released
    released.set()


def _env(canned: CannedServer, receiver: Receiver) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": canned.url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": canned.url,
        "ORDERSTREAM_TABLE": dataset.TABLE,
        "ORDERSTREAM_STREAM_ARN": dataset.STREAM_ARN,
        "ORDERSTREAM_APP": "auto-e2e",
        "ORDERSTREAM_SINKS": "webhook",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_WEBHOOK_ALLOW_HTTP": "true",
        "ORDERSTREAM_LEASE_S": "3",
        "ORDERSTREAM_SHUTDOWN_S": "6",
    }


def _first_arrivals(receiver: Receiver) -> list[dict[str, Any]]:
    firsts: dict[str, dict[str, Any]] = {}
    for body in receiver.bodies():
        firsts.setdefault(body["id"], body)
    return list(firsts.values())


def _assert_everything_once_at_least_in_order(receiver: Receiver) -> None:
    expected = {c.event_id: c.body() for c in dataset.all_changes(SHARDS, RECORDS)}
    delivered = _first_arrivals(receiver)
    assert {b["id"] for b in delivered} == set(expected)
    for body in delivered:
        assert {k: body.get(k) for k in expected[body["id"]]} == expected[body["id"]]
    last: dict[str, int] = {}
    for body in delivered:  # in arrival order: each order's changes in sequence
        sequence = int(body["sequence_number"])
        assert sequence > last.get(body["order_id"], -1), body["order_id"]
        last[body["order_id"]] = sequence


def _assert_readers_as_auto_promises(worker: ScriptProcess) -> None:
    started = worker.named("process.started")
    if usable_cores() == 1:
        assert started == []
    else:
        assert started[-1]["processes"] == min(usable_cores(), SHARDS)


def test_a_sigterm_mid_drain_exits_cleanly_and_a_restart_delivers_the_rest_in_order(
    start_worker: StartWorker, canned: CannedServer, receiver: Receiver, gate: threading.Event
) -> None:
    env = _env(canned, receiver)
    first = start_worker(extra_env=env)
    receiver.wait_for(HELD_AFTER + 1, timeout=60)
    _assert_readers_as_auto_promises(first)
    readers = reader_processes_of(first.process.pid)
    assert readers

    first.signal(signal.SIGTERM)
    assert first.wait(timeout=6 + 10) == 0
    assert not any(running(pid) for pid in readers)
    assert first.named("lease.released")
    gate.set()

    second = start_worker(extra_env=env)
    wait_until(lambda: len(_first_arrivals(receiver)) == SHARDS * RECORDS, timeout=60)
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=6 + 10) == 0
    _assert_everything_once_at_least_in_order(receiver)


def test_a_kill_mid_drain_loses_nothing_and_the_next_worker_keeps_order(
    start_worker: StartWorker, canned: CannedServer, receiver: Receiver, gate: threading.Event
) -> None:
    env = _env(canned, receiver)
    first = start_worker(extra_env=env)
    receiver.wait_for(HELD_AFTER + 1, timeout=60)
    _assert_readers_as_auto_promises(first)
    readers = reader_processes_of(first.process.pid)

    first.kill()  # kill -9: its reader processes see their pipe close and stop
    wait_until(lambda: not any(running(pid) for pid in readers), timeout=15)
    gate.set()

    second = start_worker(extra_env=env)
    wait_until(lambda: second.named("lease.acquired"), timeout=20)
    wait_until(lambda: len(_first_arrivals(receiver)) == SHARDS * RECORDS, timeout=60)
    _assert_everything_once_at_least_in_order(receiver)
