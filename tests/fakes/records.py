"""Builders for DynamoDB-Streams-shaped records of the orders table (a test helper).

The dicts are what GetRecords returns for a `NEW_AND_OLD_IMAGES` stream: `eventID`,
`eventName`, and a `dynamodb` section with `Keys`, `NewImage`, `OldImage` in DynamoDB
JSON. `SequenceNumber` (and `eventID` when not given) are assigned by the stream fake
when the record is put on a shard, as DynamoDB does.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: str) -> dict[str, str]:
    return {"N": value}


def order_image(
    user_id: str,
    order_id: str,
    status: str | None,
    amount: str | None = "50",
    created_at: str | None = "2024-05-01T10:00:00.000Z",
    **extra: dict[str, Any],
) -> dict[str, Any]:
    """An order item as DynamoDB JSON; pass None to leave an attribute out."""
    image: dict[str, Any] = {
        "PK": s(f"USER#{user_id}"),
        "SK": s(f"ORDER#{order_id}"),
        "UserID": s(user_id),
    }
    if status is not None:
        image["Status"] = s(status)
    if amount is not None:
        image["Amount"] = n(amount)
    if created_at is not None:
        image["CreatedAt"] = s(created_at)
    image.update(extra)
    return image


def order_record(
    event_name: str,
    user_id: str,
    order_id: str,
    new_status: str | None = "Pending",
    old_status: str | None = None,
    *,
    amount: str | None = "50",
    event_id: str | None = None,
    created_at_s: float | None = 1_714_557_600.0,
) -> dict[str, Any]:
    """An INSERT, MODIFY or REMOVE of an order item, with the images that event carries."""
    keys = {"PK": s(f"USER#{user_id}"), "SK": s(f"ORDER#{order_id}")}
    dynamodb: dict[str, Any] = {"Keys": keys, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if created_at_s is not None:
        dynamodb["ApproximateCreationDateTime"] = created_at_s
    if event_name in ("INSERT", "MODIFY"):
        dynamodb["NewImage"] = order_image(user_id, order_id, new_status, amount)
    if event_name in ("MODIFY", "REMOVE"):
        dynamodb["OldImage"] = order_image(user_id, order_id, old_status, amount)
    record: dict[str, Any] = {
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }
    if event_id is not None:
        record["eventID"] = event_id
    return record


def profile_record(event_name: str, user_id: str) -> dict[str, Any]:
    """A user profile written (not an order: never a notification)."""
    keys = {"PK": s(f"USER#{user_id}"), "SK": s("PROFILE")}
    image = {**keys, "UserID": s(user_id), "Name": s("Ada"), "Email": s("ada@example.com")}
    dynamodb: dict[str, Any] = {"Keys": keys, "NewImage": image}
    return {"eventName": event_name, "dynamodb": dynamodb}


def status_walk(user_id: str, order_id: str, statuses: list[str]) -> list[dict[str, Any]]:
    """The records of one order created in `statuses[0]` and moved through the rest."""
    records = [order_record("INSERT", user_id, order_id, statuses[0])]
    for old, new in itertools.pairwise(statuses):
        records.append(order_record("MODIFY", user_id, order_id, new, old))
    return records


def recorded_page(name: str) -> dict[str, Any]:
    """A GetRecords response recorded as JSON under tests/events/."""
    page: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return page
