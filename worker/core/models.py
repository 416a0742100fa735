"""Value types that cross module boundaries: shards, records, changes, outcomes."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType

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


class Attr(msgspec.Struct, frozen=True, gc=False):
    """An attribute value as the typed GetRecords decoding keeps it: its `S` or `N`
    (every other type tag is skipped, as `string_attr`/`number_attr` ignore it)."""

    S: str | None = None
    N: str | None = None


class TypedImage(msgspec.Struct, frozen=True, gc=False):
    """Keys or an image holding only the attributes the worker reads; answers `get`
    and `in` like the DynamoDB JSON dict it stands for (unread attributes are absent)."""

    def get(self, name: str) -> Attr | None:
        """As the DynamoDB JSON dict's `get`: None for an attribute absent or not read."""
        value = getattr(self, name, None)
        return value if type(value) is Attr else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and type(getattr(self, name, None)) is Attr


class KeyAttrs(TypedImage, frozen=True, gc=False):
    """The record's keys as typed decoding reads them: PK and SK, all detect needs."""

    PK: Attr | UnsetType = UNSET
    SK: Attr | UnsetType = UNSET


class NewImageAttrs(TypedImage, frozen=True, gc=False):
    """The new image's attributes detect reads (Status, Amount, UserID); the rest is skipped."""

    Status: Attr | UnsetType = UNSET
    Amount: Attr | UnsetType = UNSET
    UserID: Attr | UnsetType = UNSET


class OldImageAttrs(TypedImage, frozen=True, gc=False):
    """The old image as detect reads it: its Status alone (a change is a status move)."""

    Status: Attr | UnsetType = UNSET


# DynamoDB JSON (a dict, from orjson, botocore or the KCL daemon), or a typed decoding's.
Image = dict[str, Any] | TypedImage


class RawPage:
    """The body of a GetRecords page decoded typed. Kept with its records so that the
    rare rejected one can be dead-lettered whole: typed decoding skipped what the
    worker does not read. Re-decoded once, on the first such need."""

    __slots__ = ("_records", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._records: list[Any] | None = None

    def record(self, position: int) -> dict[str, Any]:
        """The page's `position`th record as plain JSON (the typed decoding vouched for
        its shape: an object with a `dynamodb` object)."""
        if self._records is None:
            try:
                page = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                # What msgspec reads and orjson does not (an unread 1e400, invalid
                # UTF-8 in an unread string): the json module reads it.
                page = json.loads(self.body.decode("utf-8", "replace"))
            self._records = page["Records"]
        record: dict[str, Any] = self._records[position]
        return record


class StreamRecord(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """One stream record, keys and images still in DynamoDB JSON (decoded lazily).

    A Struct, not a frozen dataclass, whose init (0.76 µs) was two fifths of reading a
    typed record. Untracked by the gc: it refers only to strings, JSON and its page.
    """

    shard_id: str
    event_id: str
    event_name: str
    sequence_number: str
    created_at_s: float | None  # ApproximateCreationDateTime, epoch seconds
    keys: Image
    new_image: Image | None
    old_image: Image | None
    # Set when decoded typed: the page and place to re-read the full images from.
    origin: RawPage | None = None
    position: int = 0

    @property
    def sequence(self) -> int:
        """Sequence numbers are decimal strings of varying length: compare as integers."""
        return int(self.sequence_number)

    def full_images(self) -> tuple[Image, Image | None, Image | None]:
        """Keys and images with every attribute (for the DLQ): a typed record's are
        re-read from its page, as `parse_record` would have kept them."""
        if self.origin is None:
            return self.keys, self.new_image, self.old_image
        section = self.origin.record(self.position)["dynamodb"]
        return (
            section.get("Keys") or {},
            section.get("NewImage"),
            section.get("OldImage"),
        )


@dataclass(frozen=True)
class UserProfile:
    """The user's PROFILE item, as enrichment reads it (`Name`, `Email` may be absent
    when another client wrote the item)."""

    user_id: str
    name: str | None
    email: str | None

    def body(self) -> dict[str, Any]:
        """The `"user"` value of an enriched body, and what the email templates see as `user`."""
        return {"user_id": self.user_id, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class Notification:
    """An order status change, ready for any sink; `id` is stable per stream record.

    Enrichment (worker/delivery/enrich.py) fills `user` and sets `looked_up`: `user` None then
    means the user has no PROFILE item. `user_in_body` (ORDERSTREAM_ENRICH=profile) adds
    `"user"` to the body every sink sends; without it the body is the plain contract.
    """

    id: str
    occurred_at: str
    user_id: str
    order_id: str
    old_status: str | None
    new_status: str
    amount: str | None
    shard_id: str
    sequence_number: str
    user: UserProfile | None = field(default=None, compare=False)
    looked_up: bool = field(default=False, compare=False)
    user_in_body: bool = field(default=False, compare=False)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Notification:
        """The notification a stored body carries (a DLQ or lane entry): a `"user"` key
        means it was sent enriched, so it is again."""
        fields = {k: v for k, v in body.items() if k not in ("type", "user")}
        if "user" not in body:
            return cls(**fields)
        user = body["user"]
        profile = (
            UserProfile(str(user.get("user_id", "")), user.get("name"), user.get("email"))
            if isinstance(user, dict)
            else None
        )
        return cls(**fields, user=profile, looked_up=True, user_in_body=True)

    def user_body(self) -> dict[str, Any] | None:
        """The `"user"` value of an enriched body: the profile, or None when missing."""
        return self.user.body() if self.user is not None else None

    def to_json(self) -> str:
        """The body as compact JSON: what the webhook signs and SNS/SQS carry."""
        return json.dumps(self.body(), separators=(",", ":"))

    def body(self) -> dict[str, Any]:
        """The payload every sink carries, as a dict (the webhook signs its JSON)."""
        body: dict[str, Any] = {
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
        if self.user_in_body:
            body["user"] = self.user_body()
        return body


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
