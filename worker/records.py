"""Parse raw DynamoDB Stream records into StreamRecord, pure and tolerant.

Records arrive either from botocore (ApproximateCreationDateTime as a datetime) or
from plain JSON (epoch seconds, or epoch milliseconds from the KCL adapter).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.models import StreamRecord

# Epoch seconds stay below this until the year 5138; larger values are milliseconds.
_MILLIS_THRESHOLD = 1e11


class RecordFormatError(ValueError):
    """The record lacks what every stream record has (event id, sequence number)."""


def _epoch_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds / 1000 if seconds > _MILLIS_THRESHOLD else seconds
    return None


def _image(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def parse_record(raw: Mapping[str, Any], shard_id: str) -> StreamRecord:
    """Build a StreamRecord; images are kept as DynamoDB JSON and decoded on demand."""
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


def string_attr(image: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of a string attribute, or None if absent or of another type."""
    if not image:
        return None
    value = image.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("S"), str):
        return str(value["S"])
    return None


def number_attr(image: Mapping[str, Any] | None, name: str) -> str | None:
    """A number attribute as its exact decimal string (never a float)."""
    if not image:
        return None
    value = image.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("N"), str):
        return str(value["N"])
    return None
