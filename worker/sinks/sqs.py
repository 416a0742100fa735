"""The SQS sink: standard and FIFO queues (group = order id, dedup id = notification id)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.models import Notification
from worker.sinks.aws_errors import delivery_error

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsSink:
    name = "sqs"
    local = False

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo")

    def send(self, notification: Notification) -> None:
        kwargs: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MessageBody": notification.to_json(),
            "MessageAttributes": {
                "Idempotency-Key": {"DataType": "String", "StringValue": notification.id},
            },
        }
        if self._fifo:
            kwargs["MessageGroupId"] = notification.order_id
            kwargs["MessageDeduplicationId"] = notification.id
        try:
            self._client.send_message(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise delivery_error("sqs", exc) from exc

    def flush(self) -> None:
        return None  # each send is acknowledged by the receiver

    def close(self) -> None:
        return None
