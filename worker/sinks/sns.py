"""The SNS sink: standard and FIFO topics (group = order id, dedup id = notification id)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.models import Notification
from worker.sinks.aws_errors import delivery_error

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SnsSink:
    name = "sns"
    local = False

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._fifo = topic_arn.endswith(".fifo")

    def send(self, notification: Notification) -> None:
        kwargs: dict[str, Any] = {
            "TopicArn": self._topic_arn,
            "Message": notification.to_json(),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": "order.status_changed"},
                "new_status": {"DataType": "String", "StringValue": notification.new_status},
            },
        }
        if self._fifo:
            kwargs["MessageGroupId"] = notification.order_id
            kwargs["MessageDeduplicationId"] = notification.id
        try:
            self._client.publish(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise delivery_error("sns", exc) from exc

    def flush(self) -> None:
        return None  # each send is acknowledged by the receiver

    def close(self) -> None:
        return None
