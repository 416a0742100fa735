"""Bases for stand-ins that answer only the calls their test makes: the production seam
(a Protocol) lists more, and each call a test does not expect fails it loudly rather
than answering something made up. A subclass defines the calls it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _not_here(call: str) -> AssertionError:
    return AssertionError(f"{call} is not a call this test expects")


class RecordsOnly:
    """Stands in for the DynamoDB Streams client (`StreamsClient`) where a test reads
    pages alone: DescribeStream and GetShardIterator fail the test."""

    def describe_stream(self, **_: Any) -> Mapping[str, Any]:
        """Not expected: the test reads a page it was given."""
        raise _not_here("DescribeStream")

    def get_shard_iterator(self, **_: Any) -> Mapping[str, Any]:
        """Not expected: the test starts from an iterator of its own."""
        raise _not_here("GetShardIterator")


class PutItemOnly:
    """Stands in for the state table's client under `Lease` (`LeaseClient`) where a test
    only takes leases: renewing, releasing and reading fail the test."""

    def update_item(self, **_: Any) -> Mapping[str, Any]:
        """Not expected: the test never renews."""
        raise _not_here("UpdateItem")

    def delete_item(self, **_: Any) -> Mapping[str, Any]:
        """Not expected: the test never releases."""
        raise _not_here("DeleteItem")

    def get_item(self, **_: Any) -> Mapping[str, Any]:
        """Not expected: the test never asks who holds it."""
        raise _not_here("GetItem")


@dataclass(frozen=True)
class LocalMeta:
    """A client's `meta` as the missing-table error reads it: region and endpoint."""

    region_name: str = "us-east-1"
    endpoint_url: str = "http://127.0.0.1"
