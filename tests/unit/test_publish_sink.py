"""The SNS and SQS sinks are one class: each builds its request, errors carry its name."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fakes.notify import notification
from worker.core.errors import DeliveryError
from worker.delivery.sinks.publish import sns_sink, sqs_sink


class Client:
    """Records each call's keyword arguments; raises `error` when set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(kwargs)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        return self._call(kwargs)

    def _call(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return {}


@pytest.mark.parametrize(
    ("target", "fifo"),
    [("arn:aws:sns:us-east-1:1:orders", False), ("arn:aws:sns:us-east-1:1:orders.fifo", True)],
)
def test_sns_publishes_the_body_with_its_attributes(target: str, fifo: bool) -> None:
    client, change = Client(), notification("ORD1", 1, "Pending", "Shipped")
    sink = sns_sink(client, target)
    sink.send(change)
    (call,) = client.calls
    assert (sink.name, sink.local, call["TopicArn"], call["Message"]) == (
        "sns",
        False,
        target,
        change.to_json(),
    )
    assert call["MessageAttributes"]["new_status"]["StringValue"] == "Shipped"
    assert call["MessageAttributes"]["type"]["StringValue"] == "order.status_changed"
    assert ("MessageGroupId" in call, "MessageDeduplicationId" in call) == (fifo, fifo)
    if fifo:
        assert (call["MessageGroupId"], call["MessageDeduplicationId"]) == ("ORD1", change.id)


@pytest.mark.parametrize(
    ("target", "fifo"), [("http://q/1/orders", False), ("http://q/1/o.fifo", True)]
)
def test_sqs_sends_the_body_with_its_idempotency_key(target: str, fifo: bool) -> None:
    client, change = Client(), notification("ORD2", 2)
    sink = sqs_sink(client, target)
    sink.send(change)
    (call,) = client.calls
    assert (sink.name, call["QueueUrl"], call["MessageBody"]) == ("sqs", target, change.to_json())
    assert call["MessageAttributes"]["Idempotency-Key"]["StringValue"] == change.id
    assert ("MessageGroupId" in call, "MessageDeduplicationId" in call) == (fifo, fifo)
    if fifo:
        assert (call["MessageGroupId"], call["MessageDeduplicationId"]) == ("ORD2", change.id)


@pytest.mark.parametrize("factory", [sns_sink, sqs_sink])
def test_a_failure_is_a_delivery_error_named_after_the_sink(factory: Any) -> None:
    error = ClientError({"Error": {"Code": "Throttled", "Message": "slow down"}}, "Call")
    sink = factory(Client(error), "target")
    with pytest.raises(DeliveryError) as caught:
        sink.send(notification())
    assert caught.value.transient
    assert str(caught.value) == f"{sink.name}: Throttled: slow down"
    assert caught.value.__cause__ is error
