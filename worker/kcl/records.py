"""Decode KCL multilang records into StreamRecords, pure.

Through the DynamoDB Streams Kinesis Adapter, a KCL record's `data` is base64 of the
adapter's JSON of the stream record (`eventID`, `eventName`, `dynamodb.{Keys, NewImage,
OldImage, SequenceNumber, ApproximateCreationDateTime}` with the time in epoch
milliseconds), and its `sequenceNumber` is the stream record's sequence number.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from worker.core.models import StreamRecord
from worker.core.records import RecordFormatError, parse_record


@dataclass(frozen=True)
class KclRecord:
    """One record as KCL delivered it: decoded, or the reason it could not be."""

    sequence_number: str  # KCL's own, the one its checkpointer takes
    record: StreamRecord | None
    error: str | None = None
    raw: str | None = None  # the undecodable payload, for the DLQ

    @property
    def event_id(self) -> str:
        """The stream event id, or a stable stand-in for a record without one."""
        return self.record.event_id if self.record else f"kcl-{self.sequence_number}"


def decode(sequence_number: str, data: str | None, shard_id: str) -> KclRecord:
    """Base64 -> JSON -> StreamRecord; never raises for bad input."""
    try:
        text = base64.b64decode(data or "", validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        return KclRecord(sequence_number, None, f"data is not base64 UTF-8: {exc}", data)
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return KclRecord(sequence_number, None, f"data is not JSON: {exc}", text)
    if not isinstance(raw, dict):
        return KclRecord(sequence_number, None, "data is not a JSON object", text)
    try:
        record = parse_record(raw, shard_id)
    except RecordFormatError as exc:
        return KclRecord(sequence_number, None, str(exc), text)
    return KclRecord(sequence_number, record)
