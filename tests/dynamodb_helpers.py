"""Small DynamoDB helpers shared by the writer's integration and e2e tests."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient

REGION = "us-east-1"


@functools.cache
def _session() -> boto3.session.Session:
    # One session for the whole run: each new session reloads the service models,
    # which costs more than the requests a test makes.
    return boto3.session.Session()


def client_for(url: str, config: Config | None = None) -> DynamoDBClient:
    """A boto3 DynamoDB client on the moto server at `url`."""
    return _session().client("dynamodb", region_name=REGION, endpoint_url=url, config=config)


def scan_items(client: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """Every item of `table` (all pages), sorted by key, so two scans compare equal."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page.get("Items", []))
    return sorted(items, key=lambda item: (item["PK"]["S"], item["SK"]["S"]))
