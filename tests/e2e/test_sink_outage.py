"""Sink outage: the webhook is down for a while, then back.

The issue's scenario: "the webhook is down for 30 s, then back: everything delivered;
the DLQ receives only what exhausted its attempts; redrive empties it." The outage is
OUTAGE_S = 30 s, as asked: it outlasts many retry rounds (up to 1 s apart), and the
writes made during it never race its end, even on a loaded machine. Two phases, on one
stream and one set of checkpoints, as an operator would live them:

1. a retry policy that outlasts the outage: changes written while the receiver is down
   are all delivered once it is back, each exactly once, order per order id kept, and
   the DLQ stays empty;
2. a worker restarted with ORDERSTREAM_MAX_ATTEMPTS=2 during a second outage: the
   changes written meanwhile exhaust their attempts, a change written after recovery is
   delivered, and the DLQ holds exactly the exhausted ones; `worker dlq redrive --all`
   delivers each under its key and empties it.

The receiver is the oracle: it records its own answer to every POST by idempotency key,
so "exhausted its attempts" is read from what the receiver said, not from the worker.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.fakes.processes import ScriptProcess
from tests.fakes.receiver import Receiver, Reply, Request

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]

OUTAGE_S = 30.0
# Attempts enough to ride out the outage: 100 tries, full jitter up to 1 s apart (about
# 50 s in all; falling under 30 s is seven standard deviations away).
OUTLASTING = {
    "ORDERSTREAM_MAX_ATTEMPTS": "100",
    "ORDERSTREAM_RETRY_BASE_MS": "100",
    "ORDERSTREAM_RETRY_CAP_MS": "1000",
    "ORDERSTREAM_RETRY_SCHEDULE": "off",  # the shard holds while retrying (no lane)
}
EXHAUSTIBLE = {  # two quick attempts, then the DLQ
    "ORDERSTREAM_MAX_ATTEMPTS": "2",
    "ORDERSTREAM_RETRY_BASE_MS": "20",
    "ORDERSTREAM_RETRY_CAP_MS": "50",
    "ORDERSTREAM_RETRY_SCHEDULE": "off",  # the DLQ right after the burst, no lane
    # Phase 2 makes 6 failures in a row: the breaker (default 5) would open and refuse
    # the change written after the recovery. This test is about the retries and the DLQ;
    # the breaker has its own (tests/unit/test_breaker.py, test_guarded_sink.py).
    "ORDERSTREAM_BREAKER_FAILURES": "1000",
}


@dataclass(frozen=True)
class Answer:
    key: str
    order_id: str
    new_status: str
    status: int
    at: float  # monotonic arrival time


class Outage:
    """The receiver's responder: 503 while down, 200 otherwise; logs every answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._answers: list[Answer] = []

    def begin(self, seconds: float = math.inf) -> float:
        """Go down now, for `seconds` (until `end()` by default); returns the end time."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
            return self._down_until

    def end(self) -> None:
        with self._lock:
            self._down_until = 0.0

    def down(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        with self._lock:
            status = 503 if request.arrived_at < self._down_until else 200
            key = request.header("Idempotency-Key") or ""
            self._answers.append(
                Answer(key, body["order_id"], body["new_status"], status, request.arrived_at)
            )
        return Reply(status)

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def key_of(self, order_id: str, new_status: str) -> str:
        (key,) = {
            a.key for a in self.answers() if (a.order_id, a.new_status) == (order_id, new_status)
        }
        return key

    def statuses(self, key: str) -> list[int]:
        return [a.status for a in self.answers() if a.key == key]

    def delivered(self) -> set[str]:
        return {a.key for a in self.answers() if a.status == 200}

    def never_delivered(self) -> set[str]:
        return {a.key for a in self.answers()} - self.delivered()


def write_at_once(run_cli: RunCli, *commands: Sequence[str]) -> None:
    """A burst: several writer commands at the same time, each must succeed."""
    with ThreadPoolExecutor(len(commands)) as pool:
        for future in [pool.submit(run_cli, *command) for command in commands]:
            future.result()


def dlq_entries(run_cli: RunCli) -> list[dict[str, Any]]:
    result = run_cli("worker", "dlq", "list", "--json")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def stop(worker: ScriptProcess) -> None:
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


@pytest.mark.timeout(300)
def test_an_outage_delivers_everything_after_and_dead_letters_only_the_exhausted(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver
) -> None:
    outage = Outage()
    receiver.respond_with(outage)
    webhook = {"ORDERSTREAM_SINKS": "webhook", "ORDERSTREAM_WEBHOOK_URL": receiver.url}

    # -- phase 1: the retry policy outlasts the outage --------------------------------------
    first = start_worker(extra_env={**webhook, **OUTLASTING})
    wait_until(lambda: len(outage.delivered()) == 3, timeout=20)  # the seed's inserts
    back_at = outage.begin(OUTAGE_S)
    write_at_once(
        run_cli,
        ("writer", "set-status", "USR001", "ORD1002", "Shipped"),
        ("writer", "put-order", "USR002", "ORD2001", "--amount", "12.50"),
        ("writer", "put-order", "USR001", "ORD1004", "--amount", "7"),
    )
    write_at_once(
        run_cli,
        ("writer", "set-status", "USR001", "ORD1002", "Delivered"),
        ("writer", "set-status", "USR002", "ORD2001", "Processing"),
    )
    assert outage.down(), "the writes took longer than the outage: raise OUTAGE_S"
    wait_until(lambda: len(outage.delivered()) == 3 + 5, timeout=OUTAGE_S + 15)

    during = [
        outage.key_of("ORD1002", "Shipped"),
        outage.key_of("ORD2001", "Pending"),
        outage.key_of("ORD1004", "Pending"),
        outage.key_of("ORD1002", "Delivered"),
        outage.key_of("ORD2001", "Processing"),
    ]
    for key in during:
        statuses = outage.statuses(key)
        assert statuses[-1] == 200
        assert statuses.count(200) == 1  # delivered exactly once, no duplicate after success
    # The first change read met the outage and was retried through it. The others may
    # have waited behind it unread: a shard's next page is read once a page is resolved.
    assert any(outage.statuses(key)[:2] == [503, 503] for key in during)
    first_200 = min(a.at for a in outage.answers() if a.key in during and a.status == 200)
    assert first_200 >= back_at  # nothing got through while the receiver was down
    for earlier, later in ((during[0], during[3]), (during[1], during[4])):
        # Order per order id: the later change is first tried once the earlier is through.
        through = next(a.at for a in outage.answers() if a.key == earlier and a.status == 200)
        assert through < min(a.at for a in outage.answers() if a.key == later)
    assert first.named("notification.retry")
    assert not first.named("notification.dead_lettered")
    stop(first)
    assert dlq_entries(run_cli) == []

    # -- phase 2: two attempts only; a second outage exhausts them ------------------------
    second = start_worker(extra_env={**webhook, **EXHAUSTIBLE})
    outage.begin()
    write_at_once(
        run_cli,
        ("writer", "put-order", "USR002", "ORD3001", "--amount", "1"),
        ("writer", "put-order", "USR002", "ORD3002", "--amount", "2"),
        ("writer", "set-status", "USR001", "ORD1004", "Processing"),
    )
    wait_until(lambda: len(second.named("notification.dead_lettered")) == 3, timeout=20)
    outage.end()
    run_cli("writer", "set-status", "USR002", "ORD2001", "Shipped")  # after the recovery
    wait_until(lambda: len(second.named("notification.sent")) == 1, timeout=10)

    exhausted = outage.never_delivered()
    assert exhausted == {
        outage.key_of("ORD3001", "Pending"),
        outage.key_of("ORD3002", "Pending"),
        outage.key_of("ORD1004", "Processing"),
    }
    assert all(outage.statuses(key) == [503, 503] for key in exhausted)  # MAX_ATTEMPTS each
    assert {e["notification_id"] for e in second.named("notification.dead_lettered")} == exhausted
    assert outage.key_of("ORD2001", "Shipped") in outage.delivered()
    stop(second)

    entries = dlq_entries(run_cli)
    assert sorted(e["id"] for e in entries) == sorted(f"{key}.webhook" for key in exhausted)
    assert all(e["attempts"] == 2 and e["error"] == "webhook: HTTP 503" for e in entries)
    assert all(e["body"]["id"] == e["id"].removesuffix(".webhook") for e in entries)

    # -- redrive once the receiver is back ------------------------------------------------
    result = run_cli("worker", "dlq", "redrive", "--all", extra_env=webhook)
    assert json.loads(result.stdout.splitlines()[-1]) == {"redriven": 3, "failed": 0, "skipped": 0}
    assert all(outage.statuses(key) == [503, 503, 200] for key in exhausted)
    assert dlq_entries(run_cli) == []
    everything = {a.key for a in outage.answers()}
    assert len(everything) == 3 + 5 + 3 + 1  # seed, phase 1, exhausted, after recovery
    assert all(outage.statuses(key).count(200) == 1 for key in everything)  # once each
