"""The retry lane end to end: the stream never waits for a sink.

Two sinks, the webhook (a local receiver) and SQS (on the moto server). While the
webhook answers 503, the worker parks its changes in the state table and goes on:
SQS gets every change at once, the shard's checkpoint keeps up, and once the webhook
is back the lane delivers every parked change, in order per order, each exactly once.
Parked changes survive kill -9. An order the receiver refuses forever reaches the DLQ,
in order, at the end of a short schedule, while every other order is delivered.

The receiver is the oracle: it records its own answer to every POST by idempotency key.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import wait_until
from tests.e2e.test_sink_outage import Outage
from tests.fakes.processes import ScriptProcess
from tests.fakes.receiver import Receiver, Reply, Request

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]

# Short steps, so a parked change is retried within seconds of the webhook's return.
SCHEDULE = ",".join(["1s"] * 40)
LANE = {
    "ORDERSTREAM_MAX_ATTEMPTS": "2",
    "ORDERSTREAM_RETRY_BASE_MS": "20",
    "ORDERSTREAM_RETRY_CAP_MS": "50",
    "ORDERSTREAM_RETRY_SCHEDULE": SCHEDULE,
    "ORDERSTREAM_BREAKER_OPEN_S": "1",
}
CHANGES = [  # (user, order, new status), written one after another during the outage
    ("USR001", "ORD1002", "Shipped"),
    ("USR001", "ORD1001", "Delivered"),
    ("USR001", "ORD1002", "Delivered"),
    ("USR002", "ORD2001", None),  # a new order: put-order
    ("USR002", "ORD2001", "Processing"),
    ("USR002", "ORD2001", "Shipped"),
]


def sqs_queue(cli_env: dict[str, str]) -> tuple[Any, str]:
    sqs = boto3.client(
        "sqs", endpoint_url=cli_env["AWS_ENDPOINT_URL"], region_name=cli_env["AWS_DEFAULT_REGION"]
    )
    return sqs, sqs.create_queue(QueueName="orders")["QueueUrl"]


def sqs_bodies(sqs: Any, url: str, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything received so far (messages deleted once read)."""
    page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    for message in page.get("Messages", []):
        seen.append(json.loads(message["Body"]))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return seen


def write(run_cli: RunCli) -> None:
    for user, order, status in CHANGES:
        if status is None:
            run_cli("writer", "put-order", user, order, "--amount", "3")
        else:
            run_cli("writer", "set-status", user, order, status)


def lane(run_cli: RunCli) -> list[dict[str, Any]]:
    listed = run_cli("worker", "lane", "list", "--json").stdout.splitlines()
    return [json.loads(line) for line in listed if line.strip()]


def lag_ms(worker: ScriptProcess) -> int | None:
    """The largest shard lag in the worker's latest stats event."""
    stats = worker.named("worker.stats")
    if not stats or not stats[-1]["lag"]:
        return None
    return max(shard["lag_ms"] for shard in stats[-1]["lag"].values())


def in_order(outage: Outage) -> None:
    """Per order, the first 200 of each change comes in the order the changes were
    written, and each change is answered 200 exactly once."""
    delivered = [a for a in outage.answers() if a.status == 200]
    keys = [a.key for a in delivered]
    assert len(keys) == len(set(keys)), "a change was delivered twice"
    for order in {o for _, o, _ in CHANGES}:
        statuses = [a.new_status for a in delivered if a.order_id == order]
        expected = [s or "Pending" for _, o, s in CHANGES if o == order]
        assert statuses[-len(expected) :] == expected, (order, statuses)


def env(receiver: Receiver, queue_url: str) -> dict[str, str]:
    return {
        "ORDERSTREAM_SINKS": "webhook,sqs",
        "ORDERSTREAM_WEBHOOK_URL": receiver.url,
        "ORDERSTREAM_SQS_QUEUE_URL": queue_url,
        **LANE,
    }


@pytest.mark.timeout(240)
def test_a_webhook_outage_parks_its_changes_while_sqs_and_the_shard_go_on(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver, cli_env: dict[str, str]
) -> None:
    outage = Outage()
    receiver.respond_with(outage)
    sqs, url = sqs_queue(cli_env)
    seen: list[dict[str, Any]] = []
    worker = start_worker(extra_env=env(receiver, url))
    wait_until(lambda: len(outage.delivered()) == 3, timeout=20)  # the seed's inserts
    wait_until(lambda: len(sqs_bodies(sqs, url, seen)) == 3, timeout=10)

    outage.begin()
    write(run_cli)
    # SQS is not held up by the webhook: every change arrives while it is still down.
    wait_until(lambda: len(sqs_bodies(sqs, url, seen)) == 3 + len(CHANGES), timeout=20)
    assert outage.down()
    assert len(outage.delivered()) == 3
    # Every change parked for the webhook; the checkpoint passed them all.
    wait_until(lambda: len(lane(run_cli)) == len(CHANGES), timeout=20)
    waiting = {entry["waiting_for"] for entry in lane(run_cli)}
    assert "behind an earlier change of its order" in waiting  # an operator sees why
    wait_until(lambda: lag_ms(worker) == 0, timeout=20)
    parked = worker.named("notification.parked")
    assert {p["order_id"] for p in parked} == {o for _, o, _ in CHANGES}
    assert any(p["attempt"] == 0 for p in parked)  # later changes parked behind, unsent
    status = run_cli("worker", "status", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in status if '"sink"' in line]
    webhook = next(row for row in rows if row["sink"] == "webhook")
    assert webhook["parked"] == len(CHANGES)
    assert webhook["oldest_parked_s"] >= 0

    outage.end()
    wait_until(lambda: len(outage.delivered()) == 3 + len(CHANGES), timeout=60)
    in_order(outage)
    assert lane(run_cli) == []
    assert run_cli("worker", "dlq", "list", "--json").stdout.strip() == ""
    assert len({body["id"] for body in seen}) == len(seen)  # SQS: each change once
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=25) == 0


@pytest.mark.timeout(240)
def test_parked_changes_survive_kill_9_and_the_next_worker_delivers_them(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver, cli_env: dict[str, str]
) -> None:
    outage = Outage()
    receiver.respond_with(outage)
    _, url = sqs_queue(cli_env)
    first = start_worker(extra_env=env(receiver, url))
    wait_until(lambda: len(outage.delivered()) == 3, timeout=20)
    outage.begin()
    write(run_cli)
    wait_until(lambda: len(lane(run_cli)) == len(CHANGES), timeout=30)
    wait_until(lambda: lag_ms(first) == 0, timeout=20)  # checkpointed past them all
    first.kill()

    second = start_worker(extra_env=env(receiver, url))
    wait_until(lambda: second.named("lease.acquired"), timeout=40)
    outage.end()
    wait_until(lambda: len(outage.delivered()) == 3 + len(CHANGES), timeout=60)
    in_order(outage)
    assert lane(run_cli) == []
    assert second.named("lane.delivered")


@pytest.mark.timeout(240)
def test_an_order_refused_forever_reaches_the_dlq_in_order_and_the_rest_go_on(
    run_cli: RunCli, start_worker: StartWorker, receiver: Receiver, cli_env: dict[str, str]
) -> None:
    def refuse_one(request: Request) -> Reply:
        return Reply(500 if request.json()["order_id"] == "ORD2001" else 200)

    receiver.respond_with(refuse_one)
    _, url = sqs_queue(cli_env)
    short = {
        **env(receiver, url),
        "ORDERSTREAM_RETRY_SCHEDULE": "500ms,500ms,500ms",
        "ORDERSTREAM_BREAKER_FAILURES": "1000",  # one bad order is not a sick endpoint
        "ORDERSTREAM_BREAKER_RATIO": "1",
    }
    worker = start_worker(extra_env=short)
    wait_until(lambda: len(receiver.requests) >= 3, timeout=20)
    write(run_cli)

    def dead() -> list[dict[str, Any]]:
        listed = run_cli("worker", "dlq", "list", "--json").stdout.splitlines()
        return [json.loads(line) for line in listed if line.strip()]

    wait_until(lambda: len(dead()) == 3, timeout=60)  # ORD2001: Pending, Processing, Shipped
    entries = dead()
    assert [e["order_id"] for e in entries] == ["ORD2001"] * 3
    assert [int(e["sequence_number"]) for e in entries] == sorted(
        int(e["sequence_number"]) for e in entries
    )
    assert entries[0]["attempts"] == 2 + 3  # the burst, then every step of the schedule
    assert lane(run_cli) == []
    others = {
        (r.json()["order_id"], r.json()["new_status"])
        for r in receiver.requests
        if r.json()["order_id"] != "ORD2001"
    }
    assert {("ORD1002", "Shipped"), ("ORD1001", "Delivered"), ("ORD1002", "Delivered")} <= others
    assert worker.named("lane.retry_failed")
