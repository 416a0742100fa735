"""Parse raw DynamoDB Stream records into StreamRecord, pure and tolerant.

Records arrive either from botocore (ApproximateCreationDateTime as a datetime) or
from plain JSON (epoch seconds, or epoch milliseconds from the KCL adapter), or, for
most GetRecords pages, decoded typed (`TypedRecord`, see fastparse.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from worker.core.models import (
    Attr,
    Image,
    KeyAttrs,
    NewImageAttrs,
    OldImageAttrs,
    RawPage,
    StreamRecord,
)

# Epoch seconds stay below this until the year 5138; larger values are milliseconds.
_MILLIS_THRESHOLD = 1e11
_LATEST_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last instant `datetime` holds


class RecordFormatError(ValueError):
    """The record lacks what every stream record has (event id, sequence number)."""


def _epoch_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            return None
        seconds = seconds / 1000 if seconds > _MILLIS_THRESHOLD else seconds
        # NaN, infinities and times no datetime can hold: as if absent, not a crash later.
        return seconds if 0.0 <= seconds <= _LATEST_S else None
    return None


def _image(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def parse_record(raw: Mapping[str, Any], shard_id: str) -> StreamRecord:
    """Build a StreamRecord; images are kept as DynamoDB JSON and decoded on demand."""
    if not isinstance(raw, Mapping):  # JSON from elsewhere (the KCL daemon) may be anything
        raise RecordFormatError("record is not an object")
    dynamodb = raw.get("dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise RecordFormatError("record has no 'dynamodb' section")
    sequence = dynamodb.get("SequenceNumber")
    event_id = raw.get("eventID")
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise RecordFormatError("record has no numeric SequenceNumber")
    if not isinstance(event_id, str) or not event_id:
        raise RecordFormatError("record has no eventID")
    return StreamRecord(
        shard_id=shard_id,
        event_id=event_id,
        event_name=str(raw.get("eventName", "")),
        sequence_number=sequence,
        created_at_s=_epoch_seconds(dynamodb.get("ApproximateCreationDateTime")),
        keys=_image(dynamodb.get("Keys")) or {},
        new_image=_image(dynamodb.get("NewImage")),
        old_image=_image(dynamodb.get("OldImage")),
    )


class TypedSection(msgspec.Struct, frozen=True, gc=False):
    """A record's `dynamodb` section as typed decoding reads it (fastparse.py)."""

    SequenceNumber: str
    # Epoch seconds; typed as the numbers `_epoch_seconds` takes (a bool is refused).
    ApproximateCreationDateTime: int | float | None = None
    Keys: KeyAttrs | None = None
    NewImage: NewImageAttrs | None = None
    OldImage: OldImageAttrs | None = None


class TypedRecord(msgspec.Struct, frozen=True, gc=False):
    """A stream record as typed decoding reads it; every other field is skipped."""

    event_id: str = msgspec.field(name="eventID")
    dynamodb: TypedSection
    event_name: str = msgspec.field(name="eventName", default="")

    def well_formed(self) -> bool:
        """What `parse_record` demands beyond the types: else the page goes untyped."""
        return bool(self.event_id) and self.dynamodb.SequenceNumber.isdigit()


_NO_KEYS = KeyAttrs()


def typed_records(raws: list[TypedRecord], shard_id: str, origin: RawPage) -> list[StreamRecord]:
    """StreamRecords of a page decoded typed, all well formed: what `parse_record`
    makes of the same JSON, with images holding only the attributes read."""
    records = []
    for position, raw in enumerate(raws):
        section = raw.dynamodb
        records.append(
            StreamRecord(
                shard_id,
                raw.event_id,
                raw.event_name,
                section.SequenceNumber,
                _epoch_seconds(section.ApproximateCreationDateTime),
                section.Keys or _NO_KEYS,
                section.NewImage,
                section.OldImage,
                origin,
                position,
            )
        )
    return records


def _typed_attr(image: Image | None, name: str, kind: str) -> str | None:
    # `dict`, not `Mapping`: images come from JSON, and an ABC check per attribute is a
    # tenth of a record's CPU in a backlog drain.
    if not image:
        return None
    value = image.get(name)
    if type(value) is Attr:  # a typed decoding's: a str or None by construction
        inner: object = value.S if kind == "S" else value.N
    elif type(value) is dict:
        inner = value.get(kind)
    else:
        return None
    return inner if type(inner) is str else None


def string_attr(image: Image | None, name: str) -> str | None:
    """The value of a string attribute, or None if absent or of another type."""
    return _typed_attr(image, name, "S")


def number_attr(image: Image | None, name: str) -> str | None:
    """A number attribute as its exact decimal string (never a float)."""
    return _typed_attr(image, name, "N")
