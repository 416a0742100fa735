"""The backlog both drain consumers read: S closed shards of N order MODIFY records.

Deterministic from (shards, records, seed), so the canned server that serves the
records and the harness that checks every notification against them build the same
data independently. Each shard holds about N/3 orders; an order moves
Pending→Processing→Shipped→Delivered, its three changes spread over the shard (order
o changes at offsets o, o+O, o+2O) the way many orders progress at once in a real
backlog, so one page mixes many orders and an order's changes span pages.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REGION = "us-east-1"
TABLE = "BenchOrders"
STREAM_LABEL = "2024-01-01T00:00:00.000"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/{STREAM_LABEL}"
BASE_EPOCH_S = 1_704_067_200  # 2024-01-01T00:00:00Z
STATUSES = ("Pending", "Processing", "Shipped", "Delivered")
SEQUENCE_BASE = 10**20  # real sequence numbers are long decimal strings (21+ digits)
SHARD_SPAN = 10**12  # sequence numbers of shard s lie in [base + s*span, base + (s+1)*span)


def shard_id(shard: int) -> str:
    return f"shardId-00000001704067200000-{shard:08x}"


def sequence_number(shard: int, offset: int) -> str:
    return str(SEQUENCE_BASE + shard * SHARD_SPAN + offset + 1)


def offset_of(shard: int, sequence: str) -> int:
    """The offset of `sequence` within `shard` (may be out of range: the caller checks)."""
    return int(sequence) - SEQUENCE_BASE - shard * SHARD_SPAN - 1


def iso_ms(epoch_s: float) -> str:
    stamp = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class Change:
    """One record's facts, as a correct consumer must report them."""

    event_id: str
    shard_id: str
    sequence_number: str
    user_id: str
    order_id: str
    old_status: str
    new_status: str
    amount: str
    created_at_s: int

    def body(self) -> dict[str, Any]:
        """The notification body docs/design.md section 6 promises for this record."""
        return {
            "type": "order.status_changed",
            "id": self.event_id,
            "occurred_at": iso_ms(self.created_at_s),
            "user_id": self.user_id,
            "order_id": self.order_id,
            "old_status": self.old_status,
            "new_status": self.new_status,
            "amount": self.amount,
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
        }


def shard_changes(shard: int, records: int, seed: int = 0) -> list[Change]:
    """The N changes of one shard, in sequence order."""
    rng = random.Random(f"{seed}:{shard}")
    orders = max(1, -(-records // 3))
    amounts = [f"{rng.randint(100, 99_999) / 100:.2f}" for _ in range(orders)]
    changes = []
    for offset in range(records):
        order, step = offset % orders, offset // orders
        changes.append(
            Change(
                event_id=f"{rng.getrandbits(128):032x}",
                shard_id=shard_id(shard),
                sequence_number=sequence_number(shard, offset),
                user_id=f"BU{shard:02d}{order // 5:06d}",
                order_id=f"BO{shard:02d}{order:07d}",
                old_status=STATUSES[step % 3],
                new_status=STATUSES[step % 3 + 1],
                amount=amounts[order],
                created_at_s=BASE_EPOCH_S + offset // 100,
            )
        )
    return changes


def _image(change: Change, status: str, updated_s: int) -> dict[str, Any]:
    return {
        "PK": {"S": f"USER#{change.user_id}"},
        "SK": {"S": f"ORDER#{change.order_id}"},
        "UserID": {"S": change.user_id},
        "Amount": {"N": change.amount},
        "Status": {"S": status},
        "CreatedAt": {"S": iso_ms(BASE_EPOCH_S - 3600)},
        "UpdatedAt": {"S": iso_ms(updated_s)},
    }


def stream_record(change: Change) -> dict[str, Any]:
    """The record exactly as DynamoDB Streams' GetRecords returns it (JSON 1.0)."""
    new_image = _image(change, change.new_status, change.created_at_s)
    old_image = _image(change, change.old_status, change.created_at_s - 60)
    keys = {"PK": new_image["PK"], "SK": new_image["SK"]}
    size = len(json.dumps([keys, new_image, old_image], separators=(",", ":")))
    return {
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": change.created_at_s,
            "Keys": keys,
            "NewImage": new_image,
            "OldImage": old_image,
            "SequenceNumber": change.sequence_number,
            "SizeBytes": size,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventID": change.event_id,
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
    }


def all_changes(shards: int, records: int, seed: int = 0) -> list[Change]:
    return [c for s in range(shards) for c in shard_changes(s, records, seed)]
