"""Value types that cross module boundaries: shards, records, changes, outcomes."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

NOTIFICATION_TYPE = "order.status_changed"


@dataclass(frozen=True)
class Shard:
    """A stream shard as DescribeStream lists it: its parent orders the reading (a child
    waits until its parent is read out)."""

    shard_id: str
    parent_id: str | None
    starting_sequence: str | None
    ending_sequence: str | None  # set once the shard is closed

    @property
    def closed(self) -> bool:
        """A closed shard gets no new records: once read out, its children take over."""
        return self.ending_sequence is not None

    @property
    def starting_sequence_int(self) -> int:
        """Sequence numbers compare as integers (their lengths vary)."""
        return int(self.starting_sequence or 0)


@dataclass(frozen=True)
class StreamRecord:
    """One stream record, keys and images still in DynamoDB JSON (decoded lazily)."""

    shard_id: str
    event_id: str
    event_name: str
    sequence_number: str
    created_at_s: float | None  # ApproximateCreationDateTime, epoch seconds
    keys: dict[str, Any]
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None

    @property
    def sequence(self) -> int:
        """Sequence numbers are decimal strings of varying length: compare as integers."""
        return int(self.sequence_number)


@dataclass(frozen=True)
class Notification:
    """An order status change, ready for any sink; `id` is stable per stream record."""

    id: str
    occurred_at: str
    user_id: str
    order_id: str
    old_status: str | None
    new_status: str
    amount: str | None
    shard_id: str
    sequence_number: str

    def to_json(self) -> str:
        """The body as compact JSON: what the webhook signs and SNS/SQS carry."""
        return json.dumps(self.body(), separators=(",", ":"))

    def body(self) -> dict[str, Any]:
        """The payload every sink carries, as a dict (the webhook signs its JSON)."""
        return {
            "type": NOTIFICATION_TYPE,
            "id": self.id,
            "occurred_at": self.occurred_at,
            "user_id": self.user_id,
            "order_id": self.order_id,
            "old_status": self.old_status,
            "new_status": self.new_status,
            "amount": self.amount,
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
        }


class Outcome(enum.Enum):
    """What became of one (record, sink) delivery; all but FAILED let the checkpoint pass."""

    DELIVERED = "delivered"
    SKIPPED = "skipped"  # not an order change, or filtered out by the transition rules
    DUPLICATE = "duplicate"  # the dedup store says it was delivered before
    DEAD_LETTERED = "dead_lettered"
    PARKED = "parked"  # in the retry lane: retried later, in order, from the state table
    FAILED = "failed"  # neither delivered nor dead-lettered (stop, or the DLQ is down)

    @property
    def resolved(self) -> bool:
        """Resolved outcomes let the checkpoint pass the record; FAILED holds it."""
        return self is not Outcome.FAILED


@dataclass(frozen=True)
class BatchResult:
    """What a batch allows: the checkpoint (None: not even its first record), and how
    many records are unresolved, which tells the settling core where to stop."""

    checkpoint: str | None
    unresolved: int = 0
