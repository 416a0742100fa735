"""Enrichment, the email sink and the EventBridge sink against a real moto_server over
HTTP: emails checked in moto's record of sent messages (`/moto-api/data.json`), events
through an EventBridge rule that targets an SQS queue."""

from __future__ import annotations

import email
import email.policy
import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import MotoServer
from tests.fakes.notify import MemoryDeadLetters, notification
from tests.integration.test_sinks_aws import create_queue, queue_arn, receive_all
from worker.aws import Clients
from worker.core.models import Notification, Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.enrich import Profiles
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink
from worker.delivery.sinks.email import ID_HEADER, EmailSink
from worker.delivery.sinks.email_templates import EmailTemplates
from worker.delivery.sinks.enriched import EnrichedSink
from worker.delivery.sinks.eventbridge import EventBridgeSink
from writer.aws import dynamodb_client
from writer.repository import OrderRepository
from writer.seed import seed

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SENDER = "Shop <shop@example.com>"


@pytest.fixture
def clients(moto_server: MotoServer) -> Clients:
    del moto_server
    return Clients("us-east-1")


@pytest.fixture
def profiles(clients: Clients) -> Profiles:
    """The seeded single table (Alice and Bob have profiles), read as the worker does."""
    repo = OrderRepository(dynamodb_client("us-east-1"), "Users")
    repo.create_table()
    seed(repo)
    return Profiles(client=clients.dynamodb(), table="Users", ttl_s=60, clock=lambda: 0.0)


def sent_emails(moto_server: MotoServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{moto_server.url}/moto-api/data.json", timeout=10) as answer:
        data = json.load(answer)
    return list(data["ses"]["RawMessage"])


def dispatch(
    sinks: dict[str, Sink], changes: list[Notification], dlq: MemoryDeadLetters
) -> list[Outcome]:
    dispatcher = Dispatcher(
        sinks=sinks,
        rules=parse_rules(None, None, tuple(sinks)),
        policy=RetryPolicy(2, 0.0, 0.0),
        dlq=dlq,
        stats=Stats(),
        concurrency=16,
        sleep=lambda _s: None,
    )
    return dispatcher.dispatch(changes)


def test_enrichment_reads_the_profiles_of_the_single_table(profiles: Profiles) -> None:
    page = [notification("ORD1", 1, user_id="USR001"), notification("ORD9", 2, user_id="USR404")]
    alice, nobody = profiles.enrich(page)
    assert alice.user is not None
    assert (alice.user.name, alice.user.email) == ("Alice", "alice@email.com")
    assert nobody.looked_up
    assert nobody.user is None
    assert profiles.keys_read == 2
    # As the server reports it (moto: a unit a key; DynamoDB: half a unit a key of an
    # eventually consistent read of up to 4 KB).
    assert 1.0 <= profiles.read_units <= 2.0


def test_an_email_reaches_moto_with_the_id_header(
    clients: Clients, profiles: Profiles, moto_server: MotoServer
) -> None:
    ses = clients.sesv2()
    ses.create_email_identity(EmailIdentity="shop@example.com")
    sink = EnrichedSink(
        sink=EmailSink(client=ses, sender=SENDER, templates=EmailTemplates()),
        profiles=profiles,
        in_body=False,
    )
    change = notification("ORD1002", 7, "Processing", "Shipped", user_id="USR001")
    assert dispatch({"email": sink}, [change], MemoryDeadLetters()) == [Outcome.DELIVERED]

    (sent,) = sent_emails(moto_server)
    # Destination.ToAddresses, then moto appends the To header's: one address twice.
    assert set(sent["destinations"]) == {"alice@email.com"}
    message = email.message_from_string(sent["raw_data"], policy=email.policy.default)
    assert message[ID_HEADER] == change.id
    assert "ORD1002" in str(message["Subject"])
    assert "Shipped" in message.get_body(preferencelist=("plain",)).get_content()


def test_no_profile_and_an_unverified_sender_are_dead_lettered_with_the_reason(
    clients: Clients, profiles: Profiles, moto_server: MotoServer
) -> None:
    ses = clients.sesv2()  # no identity verified: moto rejects the sender
    sink = EnrichedSink(
        sink=EmailSink(client=ses, sender=SENDER, templates=EmailTemplates()),
        profiles=profiles,
        in_body=False,
    )
    dlq = MemoryDeadLetters()
    changes = [
        notification("ORD1", 1, user_id="USR001"),
        notification("ORD9", 2, user_id="USR404"),
    ]
    assert dispatch({"email": sink}, changes, dlq) == [Outcome.DEAD_LETTERED] * 2
    errors = {letter.order_id: letter.error for letter in dlq.letters}
    assert "MessageRejected" in errors["ORD1"]
    assert "USR404 has no profile" in errors["ORD9"]
    assert all(letter.attempts == 1 for letter in dlq.letters)  # not retried
    assert sent_emails(moto_server) == []


def test_events_reach_a_rule_target_with_the_body_and_the_user(
    clients: Clients, profiles: Profiles, sqs: SQSClient
) -> None:
    events = clients.events()
    url = create_queue(sqs, "order-events")
    events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["orderstream"]}))
    events.put_targets(Rule="orders", Targets=[{"Id": "queue", "Arn": queue_arn(sqs, url)}])
    sink = EnrichedSink(
        sink=EventBridgeSink(client=events, bus="default"), profiles=profiles, in_body=True
    )
    changes = [
        notification(f"ORD{n}", n, user_id="USR001" if n % 2 else "USR404") for n in range(12)
    ]
    assert dispatch({"eventbridge": sink}, changes, MemoryDeadLetters()) == [Outcome.DELIVERED] * 12

    received = [json.loads(m["Body"]) for m in receive_all(sqs, url, 12)]
    assert {e["detail-type"] for e in received} == {"order.status_changed"}
    assert {e["source"] for e in received} == {"orderstream"}
    by_order = {e["detail"]["order_id"]: e["detail"] for e in received}
    assert sorted(by_order) == sorted(c.order_id for c in changes)
    assert by_order["ORD1"]["user"] == {
        "user_id": "USR001",
        "name": "Alice",
        "email": "alice@email.com",
    }
    assert by_order["ORD2"]["user"] is None  # no profile: still an event
    plain = {k: v for k, v in by_order["ORD1"].items() if k != "user"}
    assert plain == changes[1].body()


@pytest.fixture
def sqs(clients: Clients) -> SQSClient:
    return clients.sqs()
