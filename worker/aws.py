"""boto3 clients for the worker, with botocore's retry mode configured once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# botocore retries throttling and 5xx itself (standard mode, jittered); the worker's
# loops only pace and back off around what is still failing after that.
AWS_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=64,
)


class Clients:
    """One boto3 session per process; clients are thread-safe once created."""

    def __init__(self, region: str | None) -> None:
        self._session = boto3.session.Session(region_name=region)

    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", config=AWS_CONFIG)

    def streams(self) -> DynamoDBStreamsClient:
        return self._session.client("dynamodbstreams", config=AWS_CONFIG)

    def sns(self) -> SNSClient:
        return self._session.client("sns", config=AWS_CONFIG)

    def sqs(self) -> SQSClient:
        return self._session.client("sqs", config=AWS_CONFIG)
