"""Issue 17's acceptance, as a user runs it: `worker run` with the email and EventBridge
sinks against a moto server; `writer seed` and `writer set-status USR001 ORD1002 Shipped`
give an email to alice@email.com and an event with the body and the user's name; an
order whose user has no profile still reaches EventBridge, and its email is dead-lettered
with the reason."""

from __future__ import annotations

import email
import email.policy
import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MotoServer, wait_until
from tests.fakes.processes import ScriptProcess
from worker.aws import Clients

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartWorker = Callable[..., ScriptProcess]

pytestmark = pytest.mark.usefixtures("seeded")
SINKS_ENV = {
    "ORDERSTREAM_SINKS": "email,eventbridge",
    "ORDERSTREAM_EMAIL_FROM": "Shop <shop@example.com>",
}


def emails(moto_server: MotoServer) -> list[email.message.EmailMessage]:
    with urllib.request.urlopen(f"{moto_server.url}/moto-api/data.json", timeout=10) as answer:
        raw = json.load(answer)["ses"]["RawMessage"]
    return [email.message_from_string(m["raw_data"], policy=email.policy.default) for m in raw]


def test_email_and_eventbridge_from_a_status_change(
    run_cli: RunCli, start_worker: StartWorker, moto_server: MotoServer
) -> None:
    clients = Clients("us-east-1")
    clients.sesv2().create_email_identity(EmailIdentity="shop@example.com")
    sqs, events = clients.sqs(), clients.events()
    queue = sqs.create_queue(QueueName="order-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["orderstream"]}))
    events.put_targets(Rule="orders", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    received: list[dict[str, Any]] = []

    def event_for(order_id: str, new_status: str) -> dict[str, Any] | None:
        page = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in page.get("Messages", []):
            received.append(json.loads(message["Body"])["detail"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        matches = [
            d for d in received if (d["order_id"], d["new_status"]) == (order_id, new_status)
        ]
        return matches[0] if matches else None

    worker = start_worker(extra_env=SINKS_ENV)
    wait_until(lambda: len(emails(moto_server)) == 3, timeout=20)  # the seed's inserts
    run_cli("writer", "set-status", "USR001", "ORD1002", "Shipped")

    def shipped_mail() -> list[email.message.EmailMessage]:
        subjects = ("ORD1002", "shipped")
        return [m for m in emails(moto_server) if all(w in str(m["Subject"]) for w in subjects)]

    wait_until(lambda: len(shipped_mail()) == 1, timeout=10)
    (mail,) = shipped_mail()
    assert mail["To"] == "alice@email.com"
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]  # a missing plain part fails the test anyway
    assert "ORD1002" in text
    assert "Shipped" in text
    wait_until(lambda: event_for("ORD1002", "Shipped"), timeout=10)
    detail = event_for("ORD1002", "Shipped")
    assert detail is not None
    assert mail["X-Orderstream-Notification-Id"] == detail["id"]
    assert detail["user"]["name"] == "Alice"
    assert detail["old_status"] == "Processing"
    assert detail["amount"] == "30"

    # Another client writes an order for a user with no profile.
    clients.dynamodb().put_item(
        TableName="Users",
        Item={
            "PK": {"S": "USER#USR404"},
            "SK": {"S": "ORDER#ORD404"},
            "UserID": {"S": "USR404"},
            "Status": {"S": "Pending"},
            "Amount": {"N": "5"},
        },
    )
    wait_until(lambda: event_for("ORD404", "Pending"), timeout=10)
    orphan = event_for("ORD404", "Pending")
    assert orphan is not None
    assert orphan["user"] is None

    def dead_letters() -> list[dict[str, Any]]:
        listing = run_cli("worker", "dlq", "list", "--json").stdout
        return [json.loads(line) for line in listing.splitlines() if line.strip()]

    wait_until(dead_letters, timeout=10)
    (letter,) = dead_letters()
    assert letter["sink"] == "email"
    assert letter["order_id"] == "ORD404"
    assert "USR404 has no profile" in letter["error"]
    assert worker.named("enrich.profile_missing")

    # One app name on two tables shares the DLQ: another table's commands leave it be
    # (its redrive would enrich USR404's change with that table's profiles).
    archive = {**SINKS_ENV, "ORDERSTREAM_TABLE": "Archive"}
    listing = run_cli("worker", "dlq", "list", "--json", extra_env=archive)
    assert listing.stdout.strip() == ""
    redrive = run_cli("worker", "dlq", "redrive", "--all", extra_env=archive)
    assert json.loads(redrive.stdout) == {"redriven": 0, "failed": 0, "skipped": 0}
    assert [d["id"] for d in dead_letters()] == [letter["id"]]

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def test_a_broken_template_stops_the_worker_with_its_file_and_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    (tmp_path / "Shipped.txt").write_text("Hello {{ user.name }},\n\n{% if amount %}\n{{ amount\n")
    result = run_cli(
        "worker",
        "run",
        extra_env={**SINKS_ENV, "ORDERSTREAM_EMAIL_TEMPLATES": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"worker: error: ORDERSTREAM_EMAIL_TEMPLATES: {tmp_path}/Shipped.txt:")


def test_an_ses_that_never_answers_delays_neither_the_start_nor_the_stop(
    start_worker: StartWorker,
) -> None:
    """Found by an attack on issue 17: the start-up check of the sender waited on SES
    (20 s read timeout, 5 attempts) before the stream was read, and SIGTERM with it."""
    with socket.socket() as silent:  # accepts connections (the backlog), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {**SINKS_ENV, "AWS_ENDPOINT_URL_SESV2": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        worker = start_worker(extra_env=env)
        wait_until(lambda: worker.named("lease.acquired"), timeout=15)
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        assert not worker.named("email.sender_unchecked")  # still waiting on SES, unjoined
