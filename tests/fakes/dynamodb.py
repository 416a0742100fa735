"""Fakes standing in for the boto3 DynamoDB client, for unit tests with no network.

Each fake implements only the calls the code under test makes, records what it was
asked, and answers the way DynamoDB documents it (not the way a mock is told to).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError


class FakeBatchWriteClient:
    """Stands in for `DynamoDBClient.batch_write_item`.

    `unprocessed_rounds[i]` is how many requests of the i-th call DynamoDB leaves
    unprocessed (the last ones of the request, as under throttling); calls past the
    script process everything. Every request is recorded in `requests`.
    """

    def __init__(self, unprocessed_rounds: Sequence[int] = ()) -> None:
        self.unprocessed_rounds = list(unprocessed_rounds)
        self.requests: list[list[dict[str, Any]]] = []
        self.written: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        ((table, requests),) = RequestItems.items()
        assert len(requests) <= 25, "BatchWriteItem takes at most 25 requests"
        self.requests.append(list(requests))
        call = len(self.requests) - 1
        left = self.unprocessed_rounds[call] if call < len(self.unprocessed_rounds) else 0
        left = min(left, len(requests))
        done, unprocessed = requests[: len(requests) - left], requests[len(requests) - left :]
        self.written.extend(r["PutRequest"]["Item"] for r in done)
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}


class UnreachableClient:
    """Stands in for a DynamoDB client that must not be called at all.

    Used to show that validation rejects bad input before any request is made.
    """

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"DynamoDB was called ({name}) although the input is invalid")


class CancellingTransactClient:
    """Stands in for `transact_write_items` when DynamoDB cancels the transaction.

    `reasons` are the per-item cancellation codes DynamoDB returns, in request order
    (`"None"` for an item that did not cause the cancellation).
    """

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        self.calls = 0

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        response: dict[str, Any] = {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific "
                f"reasons [{', '.join(self.reasons)}]",
            },
            "CancellationReasons": [{"Code": code} for code in self.reasons],
        }
        raise ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]  # botocore types the response as a TypedDict; a plain dict here


class CountingBatchWriteClient:
    """Stands in for `batch_write_item` and forgets what it was sent: it only counts.

    For memory measurements, where a fake that kept every item would be the growth.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.items = 0

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        ((_table, requests),) = RequestItems.items()
        assert len(requests) <= 25, "BatchWriteItem takes at most 25 requests"
        self.requests += 1
        self.items += len(requests)
        return {"UnprocessedItems": {}}
