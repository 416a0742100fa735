"""DynamoDB Streams I/O: discovery, iterators and reads, with errors translated by kind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from worker.batch.settle import Item, Unreadable
from worker.core.errors import (
    IteratorExpiredError,
    SetupError,
    ShardNotFoundError,
    StreamError,
    ThrottledError,
    TrimmedDataError,
)
from worker.core.models import Shard
from worker.core.records import RecordFormatError, parse_record, typed_records
from worker.poller.fastparse import PAGE_BYTES, RAW_PAGE
from writer.awscalls import ClientFailure
from writer.awsenv import missing_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.literals import ShardIteratorTypeType


MAX_RECORDS_PER_READ = 1000  # GetRecords' own limit
# GetRecords also stops at 1 MB: a page of at least half that is taken as cut by size, so
# more is waiting (a record may be up to ~800 KB with both images, so the cut page can be
# well under 1 MB). A wrong guess costs one read that comes back empty.
FULL_PAGE_BYTES = 512 * 1024
DESCRIBE_PAGE = 100  # DescribeStream's largest page


class ClientMeta(Protocol):
    """Where a client points: named in the error for a table that is not there."""

    @property
    def region_name(self) -> str:
        """The client's region."""
        ...

    @property
    def endpoint_url(self) -> str:
        """The endpoint it calls (a local one, or AWS's)."""
        ...


class TableClient(Protocol):
    """The part of the DynamoDB client that finds a table's stream: the boto3 client,
    or a test's stand-in that answers DescribeTable alone."""

    @property
    def meta(self) -> ClientMeta:
        """Region and endpoint, for the error when the table is missing."""
        ...

    def describe_table(self, *, TableName: str) -> Mapping[str, Any]:  # noqa: N803 (boto3's names)
        """DynamoDB's DescribeTable: the raw answer."""
        ...


class StreamsClient(Protocol):
    """The three DynamoDB Streams calls `StreamSource` makes: the boto3 client, or a
    fake stream, with no other method needed."""

    def describe_stream(
        self,
        *,
        StreamArn: str,  # noqa: N803 (boto3's names)
        Limit: int = ...,  # noqa: N803
        ExclusiveStartShardId: str = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """DescribeStream: one page of the stream's shards."""
        ...

    def get_shard_iterator(
        self,
        *,
        StreamArn: str,  # noqa: N803 (boto3's names)
        ShardId: str,  # noqa: N803
        ShardIteratorType: ShardIteratorTypeType,  # noqa: N803
        SequenceNumber: str = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """GetShardIterator: where a read of one shard starts."""
        ...

    def get_records(
        self,
        *,
        ShardIterator: str,  # noqa: N803 (boto3's names)
        Limit: int = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """GetRecords: one page of records, and the next iterator."""
        ...


@dataclass(frozen=True)
class Position:
    """Where to open a shard: TRIM_HORIZON, LATEST, or AFTER/AT a sequence number."""

    kind: str
    sequence: str | None = None

    @classmethod
    def after(cls, sequence: str) -> Position:
        """Where a checkpointed shard resumes: just past the last resolved record."""
        return cls("AFTER_SEQUENCE_NUMBER", sequence)


@dataclass
class Page:
    """One GetRecords answer: the records, and where the next read starts."""

    records: list[Item]  # in sequence order; an undecodable one as `Unreadable`
    next_iterator: str | None  # None: the shard is closed and fully read
    full: bool = False  # cut by GetRecords' Limit or its 1 MB: more is waiting


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Map botocore failures onto the worker's stream errors, keeping the cause."""
    try:
        yield
    except ClientError as exc:
        failure = ClientFailure.of(exc)
        code = failure.code
        message = f"{action}: {code}: {failure.message}"
        if code == "ExpiredIteratorException":
            raise IteratorExpiredError(message) from exc
        if code == "TrimmedDataAccessException":
            raise TrimmedDataError(message) from exc
        if code == "ResourceNotFoundException":
            raise ShardNotFoundError(message) from exc
        if failure.transient:
            raise ThrottledError(message) from exc
        if code in ("UnrecognizedClientException", "AccessDeniedException"):
            raise SetupError(message) from exc
        raise StreamError(message) from exc
    except NoCredentialsError as exc:
        raise SetupError(f"{action}: no AWS credentials found") from exc
    except BotoCoreError as exc:
        raise ThrottledError(f"{action}: {exc}") from exc


def latest_stream_arn(client: TableClient, table: str) -> str:
    """The table's current stream: a stream disabled and re-enabled gets a new ARN."""
    try:
        with translated("DescribeTable"):
            description = client.describe_table(TableName=table)["Table"]
    except ShardNotFoundError as exc:
        where = (client.meta.region_name, client.meta.endpoint_url)
        raise SetupError(missing_table(table, *where)) from exc
    arn = description.get("LatestStreamArn")
    spec: Any = description.get("StreamSpecification") or {}
    if not arn or not spec.get("StreamEnabled"):
        raise SetupError(f"table {table!r} has no enabled stream")
    return str(arn)


class StreamSource:
    """Reads one stream through a streams client; the only place that sees its dicts."""

    def __init__(self, client: StreamsClient) -> None:
        self._client = client

    def shards(self, stream_arn: str) -> list[Shard]:
        """Every shard of the stream, through all DescribeStream pages."""
        shards: list[Shard] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": stream_arn, "Limit": DESCRIBE_PAGE}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            with translated("DescribeStream"):
                description = self._client.describe_stream(**kwargs)["StreamDescription"]
            for raw in description.get("Shards", []):
                seq = raw.get("SequenceNumberRange", {})
                shards.append(
                    Shard(
                        raw["ShardId"],
                        raw.get("ParentShardId"),
                        seq.get("StartingSequenceNumber"),
                        seq.get("EndingSequenceNumber"),
                    )
                )
            start = description.get("LastEvaluatedShardId")
            if not start:
                # Once each: a listing that changed between pages (a shard aged out)
                # can repeat one, and two readers on one shard would re-send its changes.
                return list({s.shard_id: s for s in shards}.values())

    def iterator(self, stream_arn: str, shard_id: str, position: Position) -> str:
        """A shard iterator at `position`; iterators expire after 15 minutes unused."""
        kwargs: dict[str, Any] = {
            "StreamArn": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": position.kind,
        }
        if position.sequence is not None:
            kwargs["SequenceNumber"] = position.sequence
        with translated("GetShardIterator"):
            return str(self._client.get_shard_iterator(**kwargs)["ShardIterator"])

    def read(self, shard_id: str, iterator: str) -> Page:
        """One page of a shard; a record that does not parse stays in its place as
        `Unreadable`, so the checkpoint cannot pass it unnoticed."""
        with translated("GetRecords"):
            response = self._client.get_records(ShardIterator=iterator, Limit=MAX_RECORDS_PER_READ)
        raws: Any = response.get("Records", [])
        extra = cast("dict[str, Any]", response)
        full = len(raws) >= MAX_RECORDS_PER_READ or extra.get(PAGE_BYTES, 0) >= FULL_PAGE_BYTES
        origin = extra.get(RAW_PAGE)
        if origin is not None:  # decoded typed by fastparse: every record well formed
            typed = cast("list[Item]", typed_records(raws, shard_id, origin))
            return Page(typed, response.get("NextShardIterator"), full)
        records: list[Item] = []
        for raw in raws:
            try:
                records.append(parse_record(raw, shard_id))
            except RecordFormatError as exc:
                records.append(_unreadable(raw, str(exc), records))
        return Page(records, response.get("NextShardIterator"), full)


def _unreadable(raw: Any, reason: str, before: list[Item]) -> Unreadable:
    """A record `parse_record` refused, kept in its place for the DLQ. One without a
    usable sequence number stands at the record before it (the checkpoint may pass
    it once it is dead-lettered); one without an event id gets a stable stand-in."""
    section = raw.get("dynamodb") if isinstance(raw, dict) else None
    sequence = section.get("SequenceNumber") if isinstance(section, dict) else None
    if not (isinstance(sequence, str) and sequence.isdigit()):
        sequence = before[-1].sequence_number if before else "0"
    text = json.dumps(raw, default=str, ensure_ascii=False)
    event_id = raw.get("eventID") if isinstance(raw, dict) else None
    if not isinstance(event_id, str) or not event_id:
        event_id = "unreadable-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    return Unreadable(sequence, event_id, reason, text[:100_000])
