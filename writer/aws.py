"""boto3 clients for the writer, with botocore's own retry mode configured once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from writer.awscalls import client_config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Throttling and 5xx are retried by botocore (standard mode: exponential backoff with
# jitter); nothing above this layer retries the same call again.
RETRY_CONFIG = client_config(max_attempts=8, read_timeout=30)


def dynamodb_client(region: str | None = None) -> DynamoDBClient:
    """A client of its own session: the writer is single-threaded and short-lived."""
    return boto3.session.Session().client("dynamodb", region_name=region, config=RETRY_CONFIG)
