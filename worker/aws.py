"""boto3 clients for the worker, with botocore's retry mode configured once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from worker.core.errors import AwsUnreachableError, SetupError
from writer.awscalls import client_config
from writer.awsenv import NO_CREDENTIALS, NO_REGION, unreachable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# botocore retries throttling and 5xx itself (standard mode, jittered); the worker's
# loops only pace and back off around what is still failing after that. A pool of 64:
# many shard readers and delivery threads share each client.
AWS_CONFIG = client_config(max_attempts=5, read_timeout=20, max_pool_connections=64)


class Clients:
    """One boto3 session per process; clients are thread-safe once created."""

    def __init__(self, region: str | None) -> None:
        self._session = boto3.session.Session(region_name=region)

    def dynamodb(self) -> DynamoDBClient:
        """For the state table: checkpoints, leases, dead letters, the lane."""
        return self._session.client("dynamodb", config=AWS_CONFIG)

    def streams(self) -> DynamoDBStreamsClient:
        """For the stream itself: DescribeStream, GetShardIterator, GetRecords."""
        return self._session.client("dynamodbstreams", config=AWS_CONFIG)

    def sns(self) -> SNSClient:
        """For the `sns` sink."""
        return self._session.client("sns", config=AWS_CONFIG)

    def sqs(self) -> SQSClient:
        """For the `sqs` sink."""
        return self._session.client("sqs", config=AWS_CONFIG)

    def sesv2(self) -> SESV2Client:
        """For the `email` sink (SES v2), and the demo's verified sender."""
        return self._session.client("sesv2", config=AWS_CONFIG)

    def events(self) -> EventBridgeClient:
        """For the `eventbridge` sink."""
        return self._session.client("events", config=AWS_CONFIG)


@contextmanager
def setup_errors(what: str) -> Iterator[None]:
    """Start-up AWS failures as one line, worded as the writer words them.

    No region or credentials is a setup error (exit 2); an endpoint that does not
    answer is exit 1, as in the writer: it may be down for a moment, so worth a retry.
    """
    try:
        yield
    except NoRegionError as exc:
        raise SetupError(NO_REGION) from exc
    except NoCredentialsError as exc:
        raise SetupError(NO_CREDENTIALS) from exc
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        raise AwsUnreachableError(unreachable("DynamoDB", exc.kwargs.get("endpoint_url"))) from exc
    except (ClientError, BotoCoreError) as exc:
        raise SetupError(f"{what}: {exc}") from exc
