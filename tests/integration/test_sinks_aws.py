"""The SNS and SQS sinks against a real moto_server process over HTTP (FIFO included)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import MotoServer, wait_until
from tests.fakes.notify import MemoryDeadLetters, notification
from worker.aws import Clients
from worker.core.errors import DeliveryError
from worker.core.models import Outcome
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.dispatch import Dispatcher
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink
from worker.delivery.sinks.publish import sns_sink, sqs_sink

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def clients(moto_server: MotoServer) -> Clients:
    """The worker's own clients; AWS_ENDPOINT_URL points them at the moto server."""
    del moto_server
    return Clients("us-east-1")


@pytest.fixture
def sqs(clients: Clients) -> SQSClient:
    return clients.sqs()


@pytest.fixture
def sns(clients: Clients) -> SNSClient:
    return clients.sns()


def create_queue(sqs: SQSClient, name: str) -> str:
    if name.endswith(".fifo"):
        return sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def queue_arn(sqs: SQSClient, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def receive_all(sqs: SQSClient, url: str, count: int) -> list[Any]:
    """Every message on the queue, once `count` have arrived (deleting each)."""
    messages: list[Any] = []

    def enough() -> bool:
        page = sqs.receive_message(
            QueueUrl=url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
        )
        for message in page.get("Messages", []):
            messages.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages) >= count

    wait_until(enough, timeout=10)
    return messages


def assert_queue_empty(sqs: SQSClient, url: str) -> None:
    page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert page.get("Messages", []) == []


# -- SQS -----------------------------------------------------------------------------------


def test_sqs_standard_queue_gets_the_design_body(sqs: SQSClient) -> None:
    url = create_queue(sqs, "orders")
    change = notification("ORD1001", 5, "Processing", "Shipped")
    sqs_sink(sqs, url).send(change)
    (message,) = receive_all(sqs, url, 1)
    assert json.loads(message["Body"]) == change.body()
    assert message["MessageAttributes"]["Idempotency-Key"]["StringValue"] == change.id
    assert "MessageGroupId" not in message["Attributes"]


def test_sqs_fifo_queue_groups_by_order_and_dedupes_by_id(sqs: SQSClient) -> None:
    url = create_queue(sqs, "orders.fifo")
    sink = sqs_sink(sqs, url)
    changes = [
        notification("ORD1", 1, "Pending", "Processing"),
        notification("ORD2", 2, None, "Pending"),
        notification("ORD1", 3, "Processing", "Shipped"),
    ]
    for change in changes:
        sink.send(change)
    sink.send(changes[0])  # a replay after a crash: same id, so SQS drops it
    messages = receive_all(sqs, url, 3)
    assert len(messages) == 3
    assert [
        json.loads(m["Body"]) for m in messages if m["Attributes"]["MessageGroupId"] == "ORD1"
    ] == [
        changes[0].body(),
        changes[2].body(),
    ]
    for message in messages:
        body = json.loads(message["Body"])
        assert message["Attributes"]["MessageGroupId"] == body["order_id"]
        assert message["Attributes"]["MessageDeduplicationId"] == body["id"]
        assert body in [c.body() for c in changes]
    assert_queue_empty(sqs, url)


def test_sqs_missing_queue_is_a_permanent_error(sqs: SQSClient, moto_server: MotoServer) -> None:
    sink = sqs_sink(sqs, f"{moto_server.url}/123456789012/no-such-queue")
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert not caught.value.transient
    assert str(caught.value).startswith("sqs: ")
    assert "NonExistentQueue" in str(caught.value)


# -- SNS -----------------------------------------------------------------------------------


def test_sns_standard_topic_publishes_the_design_body(sns: SNSClient, sqs: SQSClient) -> None:
    topic = sns.create_topic(Name="orders")["TopicArn"]
    url = create_queue(sqs, "subscriber")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, url))
    change = notification("ORD1001", 5, "Processing", "Cancelled")
    sns_sink(sns, topic).send(change)
    (message,) = receive_all(sqs, url, 1)
    envelope = json.loads(message["Body"])  # SNS wraps it unless raw delivery is on
    assert envelope["TopicArn"] == topic
    assert json.loads(envelope["Message"]) == change.body()
    attributes = envelope["MessageAttributes"]
    assert attributes["type"]["Value"] == "order.status_changed"
    assert attributes["new_status"]["Value"] == "Cancelled"


def test_sns_fifo_topic_groups_by_order_and_dedupes_by_id(sns: SNSClient, sqs: SQSClient) -> None:
    topic = sns.create_topic(Name="orders.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = create_queue(sqs, "subscriber.fifo")
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(sqs, url),
        Attributes={"RawMessageDelivery": "true"},
    )
    sink = sns_sink(sns, topic)
    changes = [notification("ORD7", 1), notification("ORD8", 2), notification("ORD7", 3)]
    for change in changes:
        sink.send(change)
    sink.send(changes[1])  # a replay: deduplicated by id
    messages = receive_all(sqs, url, 3)
    assert len(messages) == 3
    for message in messages:
        body = json.loads(message["Body"])
        assert body in [c.body() for c in changes]
        assert message["Attributes"]["MessageGroupId"] == body["order_id"]
        assert message["Attributes"]["MessageDeduplicationId"] == body["id"]
    ord7 = [
        json.loads(m["Body"])["id"] for m in messages if m["Attributes"]["MessageGroupId"] == "ORD7"
    ]
    assert ord7 == [changes[0].id, changes[2].id]
    assert_queue_empty(sqs, url)


def test_sns_missing_topic_is_a_permanent_error(sns: SNSClient) -> None:
    sink = sns_sink(sns, "arn:aws:sns:us-east-1:123456789012:no-such-topic")
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert not caught.value.transient
    assert str(caught.value).startswith("sns: NotFound")


# -- both, through the dispatcher ------------------------------------------------------------


def test_sns_and_sqs_deliver_independently(
    sns: SNSClient, sqs: SQSClient, moto_server: MotoServer
) -> None:
    """The SQS target is gone: SNS still gets every change; SQS dead-letters its own."""
    topic = sns.create_topic(Name="orders")["TopicArn"]
    url = create_queue(sqs, "subscriber")
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(sqs, url),
        Attributes={"RawMessageDelivery": "true"},
    )
    sinks: dict[str, Sink] = {
        "sns": sns_sink(sns, topic),
        "sqs": sqs_sink(sqs, f"{moto_server.url}/123456789012/gone"),
    }
    dlq = MemoryDeadLetters()
    dispatcher = Dispatcher(
        sinks=sinks,
        rules=parse_rules(None, None, tuple(sinks)),
        policy=RetryPolicy(3, 0.001, 0.01),
        dlq=dlq,
        stats=Stats(),
        concurrency=4,
        sleep=lambda _: None,
    )
    changes = [notification("ORD1", 1), notification("ORD2", 2)]
    try:
        outcomes = dispatcher.dispatch(changes)
    finally:
        dispatcher.close()
    assert outcomes == [Outcome.DEAD_LETTERED] * 2
    received = sorted(json.loads(m["Body"])["id"] for m in receive_all(sqs, url, 2))
    assert received == [c.id for c in changes]
    assert sorted((x.sink, x.order_id, x.attempts) for x in dlq.letters) == [
        ("sqs", "ORD1", 1),
        ("sqs", "ORD2", 1),
    ]
