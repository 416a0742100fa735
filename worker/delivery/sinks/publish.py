"""The AWS messaging sinks, SNS and SQS: one class, parametrised by the call it makes.

Both publish the notification's JSON with a few message attributes; on a FIFO target
(a name ending in `.fifo`) the group is the order id, so one order's changes stay in
order, and the deduplication id is the notification id, so a replay after a crash is
dropped by AWS. Only the call, the target's address and the attributes differ: a new
AWS target (another topic-like service) is one more request builder and factory here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from worker.core.models import NOTIFICATION_TYPE, Notification
from worker.delivery.sinks.aws_errors import delivery_error

Request = Callable[[Notification], dict[str, Any]]


class AwsPublishSink:
    """Sends each notification with one AWS call; botocore has already retried
    throttling and 5xx, so a failure left is classified and raised as a DeliveryError."""

    local = False

    def __init__(self, *, name: str, call: Callable[..., object], request: Request) -> None:
        self.name = name
        self._call = call
        self._request = request

    def send(self, notification: Notification) -> None:
        """One call; botocore has retried throttling and 5xx, so a failure left is classified."""
        try:
            self._call(**self._request(notification))
        except (ClientError, BotoCoreError) as exc:
            raise delivery_error(self.name, exc) from exc

    def flush(self) -> None:
        """Nothing buffered: the service acknowledged each send."""
        return None  # each send is acknowledged by the receiver

    def close(self) -> None:
        """Nothing to close: the boto3 client is not the sink's own."""
        return None


def fifo_fields(notification: Notification) -> dict[str, str]:
    """Group by order (its changes stay in order), dedupe by notification id (a replay
    within AWS's five-minute window is dropped)."""
    return {
        "MessageGroupId": notification.order_id,
        "MessageDeduplicationId": notification.id,
    }


class TopicClient(Protocol):
    """The one SNS call the `sns` sink makes: the boto3 client, or a fake."""

    def publish(
        self,
        *,
        TopicArn: str,  # noqa: N803 (boto3's names)
        Message: str,  # noqa: N803
        MessageAttributes: Mapping[str, Any] = ...,  # noqa: N803
        MessageGroupId: str = ...,  # noqa: N803
        MessageDeduplicationId: str = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """Publish one notification to the topic."""
        ...


class QueueClient(Protocol):
    """The one SQS call the `sqs` sink makes: the boto3 client, or a fake."""

    def send_message(
        self,
        *,
        QueueUrl: str,  # noqa: N803 (boto3's names)
        MessageBody: str,  # noqa: N803
        MessageAttributes: Mapping[str, Any] = ...,  # noqa: N803
        MessageGroupId: str = ...,  # noqa: N803
        MessageDeduplicationId: str = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """Send one notification to the queue."""
        ...


def sns_sink(client: TopicClient, topic_arn: str) -> AwsPublishSink:
    """The `sns` sink: Publish to a standard or FIFO topic; subscribers filter on the
    `type` and `new_status` attributes without parsing the body."""
    fifo = topic_arn.endswith(".fifo")

    def request(notification: Notification) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TopicArn": topic_arn,
            "Message": notification.to_json(),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": NOTIFICATION_TYPE},
                "new_status": {"DataType": "String", "StringValue": notification.new_status},
            },
        }
        return kwargs | fifo_fields(notification) if fifo else kwargs

    return AwsPublishSink(name="sns", call=client.publish, request=request)


def sqs_sink(client: QueueClient, queue_url: str) -> AwsPublishSink:
    """The `sqs` sink: SendMessage to a standard or FIFO queue; the `Idempotency-Key`
    attribute lets a consumer of a standard queue drop a redelivery itself."""
    fifo = queue_url.endswith(".fifo")

    def request(notification: Notification) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MessageBody": notification.to_json(),
            "MessageAttributes": {
                "Idempotency-Key": {"DataType": "String", "StringValue": notification.id},
            },
        }
        return kwargs | fifo_fields(notification) if fifo else kwargs

    return AwsPublishSink(name="sqs", call=client.send_message, request=request)
