"""An in-memory fake of the DynamoDB Streams API, for unit tests with no network."""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from worker.poller.fastparse import PAGE_BYTES

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"
ITERATOR_TTL_S = 15 * 60  # shard iterators expire 15 minutes after they are issued
DESCRIBE_LIMIT = 100  # DescribeStream's largest page
GET_RECORDS_LIMIT = 1000  # GetRecords' largest page


@dataclass(frozen=True)
class Call:
    """One API call as the fake saw it; `at` is read from the fake's clock."""

    operation: str
    at: float
    shard_id: str | None
    params: dict[str, Any]


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    starting_sequence: int
    ending_sequence: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # untrimmed, in order
    trimmed_through: int | None = None  # highest sequence number trimmed away
    listed: bool = True  # False once the shard has aged out of the stream

    def last_sequence(self) -> int:
        if self.records:
            return _seq(self.records[-1])
        return self.trimmed_through or self.starting_sequence - 1


@dataclass
class _Iterator:
    shard_id: str
    after: int  # serves the records with a sequence number above this one
    issued_at: float
    expired: bool = False


@dataclass
class _Fault:
    operation: str
    code: str
    status: int
    times: int
    shard_id: str | None
    message: str


def _seq(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def client_error(operation: str, code: str, message: str = "", status: int = 400) -> ClientError:
    """The exception botocore raises for an AWS error response."""
    response: Any = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "fake"},
    }
    return ClientError(response, operation)


class FakeStreams:
    """Stands in for the boto3 `dynamodbstreams` client (a test double, not a mock).

    moto serves one shard that never splits; this fake models what the worker must
    survive on a real stream:

    - several shards, listed by `describe_stream` in pages: `Limit` is honoured and
      capped by `page_size`, with `ExclusiveStartShardId` / `LastEvaluatedShardId`;
      `reverse_listing` lists children before parents (DynamoDB promises no order);
    - lineage: `split` closes a shard (it gets an `EndingSequenceNumber`) and opens
      children whose `ParentShardId` names it; `add_shard` makes new shards appear;
    - sequence numbers increase across the whole stream (a child's are above its
      parent's) and are decimal strings whose length grows (compare them as integers);
    - iterators: TRIM_HORIZON, LATEST, AT_/AFTER_SEQUENCE_NUMBER; `GetRecords` pages of
      at most min(Limit, `records_per_read`) (with `cut_by_size`, a page cut by
      `records_per_read` stands for the service's 1 MB cut and reports that size, as
      fastparse does for a real answer); a closed shard
      read to its end answers with no `NextShardIterator`; iterators expire after 15
      minutes of `clock` time or at once with `expire_iterators`;
    - the 24 h retention: `trim` drops a shard's oldest records (reading before the
      horizon raises TrimmedDataAccessException), `age_out` drops a whole shard
      (ResourceNotFoundException);
    - faults scripted with `fail` (throttling, 5xx, anything) raised as botocore
      `ClientError`s with the real error codes.

    Every call is recorded in `calls` with the time of `clock`, so a test can check
    the read rate per shard. `hooks` run after each call that succeeded (outside the
    lock), so a test can change the stream at an exact point of a reader's progress.
    """

    def __init__(
        self,
        *,
        page_size: int = DESCRIBE_LIMIT,
        records_per_read: int = GET_RECORDS_LIMIT,
        first_sequence: int = 100,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        stream_arn: str = STREAM_ARN,
        reverse_listing: bool = False,
        cut_by_size: bool = False,
    ) -> None:
        self.stream_arn = stream_arn
        self.page_size = page_size
        self.records_per_read = records_per_read
        self.cut_by_size = cut_by_size
        self.reverse_listing = reverse_listing
        self.calls: list[Call] = []
        self.hooks: list[Callable[[Call], None]] = []
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._shards: dict[str, _Shard] = {}
        self._iterators: dict[str, _Iterator] = {}
        self._faults: list[_Fault] = []
        self._next_sequence = first_sequence
        self._tokens = itertools.count(1)

    # -- control: shape the stream ---------------------------------------------------

    def add_shard(self, parent_id: str | None = None) -> str:
        """Open a new shard; it is listed from the next DescribeStream on."""
        with self._lock:
            number = len(self._shards) + 1
            shard_id = f"shardId-{1714521600000 + number:020d}-{number:08x}"
            self._shards[shard_id] = _Shard(shard_id, parent_id, self._take_sequence())
            return shard_id

    def put(self, shard_id: str, record: dict[str, Any], *, as_is: bool = False) -> str:
        """Append a record; a given SequenceNumber is kept (it must be the highest yet).

        Missing `eventID`, `ApproximateCreationDateTime` and `SizeBytes` are filled in,
        unless `as_is` (to serve a malformed record exactly as recorded).
        """
        with self._lock:
            shard = self._open_shard(shard_id)
            raw = copy.deepcopy(record)
            dynamodb = raw.setdefault("dynamodb", {})
            given = dynamodb.get("SequenceNumber")
            if given is None:
                sequence = self._take_sequence()
            else:
                sequence = int(given)
                assert sequence > shard.last_sequence(), "sequence numbers only grow"
                self._next_sequence = max(self._next_sequence, sequence + 1)
            dynamodb["SequenceNumber"] = str(sequence)
            if not as_is:
                dynamodb.setdefault("ApproximateCreationDateTime", self._wall_clock())
                dynamodb.setdefault("SizeBytes", 100)
                raw.setdefault("eventID", hashlib.md5(str(sequence).encode()).hexdigest())  # noqa: S324 (an id, not security)
            shard.records.append(raw)
            return str(sequence)

    def put_many(self, shard_id: str, records: list[dict[str, Any]]) -> list[str]:
        return [self.put(shard_id, record) for record in records]

    def close(self, shard_id: str) -> None:
        """Close a shard: no more writes, EndingSequenceNumber set."""
        with self._lock:
            shard = self._open_shard(shard_id)
            shard.ending_sequence = max(shard.last_sequence(), shard.starting_sequence)

    def split(self, shard_id: str, children: int = 1) -> list[str]:
        """Roll a shard over: close it and open `children` shards that name it as parent."""
        with self._lock:
            self.close(shard_id)
            return [self.add_shard(parent_id=shard_id) for _ in range(children)]

    def trim(self, shard_id: str, count: int) -> str:
        """Drop the `count` oldest records of a shard (retention); returns the last dropped."""
        with self._lock:
            shard = self._shards[shard_id]
            assert 0 < count <= len(shard.records)
            dropped, shard.records = shard.records[:count], shard.records[count:]
            shard.trimmed_through = _seq(dropped[-1])
            return str(shard.trimmed_through)

    def age_out(self, shard_id: str) -> None:
        """The whole shard passed the 24 h retention: unlisted, and every call on it fails."""
        with self._lock:
            self._shards[shard_id].listed = False

    def expire_iterators(self) -> None:
        """Every iterator issued so far is now expired (as after 15 idle minutes)."""
        with self._lock:
            for iterator in self._iterators.values():
                iterator.expired = True

    def fail(
        self,
        operation: str,
        code: str,
        *,
        times: int = 1,
        shard_id: str | None = None,
        status: int = 400,
        message: str = "",
    ) -> None:
        """The next `times` calls of `operation` (on `shard_id`, if given) raise `code`."""
        with self._lock:
            self._faults.append(_Fault(operation, code, status, times, shard_id, message))

    # -- inspection ------------------------------------------------------------------

    @property
    def shard_ids(self) -> list[str]:
        with self._lock:
            return list(self._shards)

    def records(self, shard_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._shards[shard_id].records)

    def calls_to(self, operation: str, shard_id: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if c.operation == operation and (shard_id is None or c.shard_id == shard_id)
            ]

    # -- the API ---------------------------------------------------------------------

    def describe_stream(
        self,
        *,
        StreamArn: str,  # noqa: N803 (boto3's names)
        Limit: int | None = None,  # noqa: N803
        ExclusiveStartShardId: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        params = {"Limit": Limit, "ExclusiveStartShardId": ExclusiveStartShardId}
        with self._lock:
            self._record("DescribeStream", None, params)
            self._check_stream(StreamArn, "DescribeStream")
            if Limit is not None and not 1 <= Limit <= DESCRIBE_LIMIT:
                raise client_error("DescribeStream", "ValidationException", "Limit out of range")
            listed = [s for s in self._shards.values() if s.listed]
            if self.reverse_listing:
                listed.reverse()
            start = 0
            if ExclusiveStartShardId is not None:
                ids = [s.shard_id for s in listed]
                start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId in ids else 0
            size = min(Limit or DESCRIBE_LIMIT, self.page_size)
            page = listed[start : start + size]
            description: dict[str, Any] = {
                "StreamArn": StreamArn,
                "StreamLabel": StreamArn.rsplit("/", 1)[-1],
                "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "TableName": "Users",
                "KeySchema": [
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "Shards": [self._describe_shard(s) for s in page],
            }
            if start + size < len(listed):
                description["LastEvaluatedShardId"] = page[-1].shard_id
        self._run_hooks()
        return {"StreamDescription": description}

    def get_shard_iterator(
        self,
        *,
        StreamArn: str,  # noqa: N803 (boto3's names)
        ShardId: str,  # noqa: N803
        ShardIteratorType: str,  # noqa: N803
        SequenceNumber: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        params = {"ShardIteratorType": ShardIteratorType, "SequenceNumber": SequenceNumber}
        with self._lock:
            self._record("GetShardIterator", ShardId, params)
            self._check_stream(StreamArn, "GetShardIterator")
            shard = self._listed_shard(ShardId, "GetShardIterator")
            after = self._position(shard, ShardIteratorType, SequenceNumber)
            token = self._issue(shard.shard_id, after)
        self._run_hooks()
        return {"ShardIterator": token}

    def get_records(self, *, ShardIterator: str, Limit: int | None = None) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        with self._lock:
            iterator = self._iterators.get(ShardIterator)
            self._record("GetRecords", iterator.shard_id if iterator else None, {"Limit": Limit})
            response = self._read(ShardIterator, iterator, Limit)
        self._run_hooks()
        return response

    # -- internals -------------------------------------------------------------------

    def _take_sequence(self) -> int:
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence

    def _open_shard(self, shard_id: str) -> _Shard:
        shard = self._shards[shard_id]
        assert shard.ending_sequence is None, f"{shard_id} is closed"
        return shard

    def _record(self, operation: str, shard_id: str | None, params: dict[str, Any]) -> None:
        self.calls.append(Call(operation, self._clock(), shard_id, params))
        for fault in self._faults:
            if fault.operation == operation and fault.shard_id in (None, shard_id):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                raise client_error(operation, fault.code, fault.message, fault.status)

    def _run_hooks(self) -> None:
        with self._lock:
            call = self.calls[-1]
        for hook in list(self.hooks):
            hook(call)

    def _check_stream(self, arn: str, operation: str) -> None:
        if arn != self.stream_arn:
            raise client_error(operation, "ResourceNotFoundException", f"Stream {arn} not found")

    def _listed_shard(self, shard_id: str, operation: str) -> _Shard:
        shard = self._shards.get(shard_id)
        if shard is None or not shard.listed:
            raise client_error(
                operation, "ResourceNotFoundException", f"Requested resource not found: {shard_id}"
            )
        return shard

    @staticmethod
    def _describe_shard(shard: _Shard) -> dict[str, Any]:
        sequence_range = {"StartingSequenceNumber": str(shard.starting_sequence)}
        if shard.ending_sequence is not None:
            sequence_range["EndingSequenceNumber"] = str(shard.ending_sequence)
        described: dict[str, Any] = {
            "ShardId": shard.shard_id,
            "SequenceNumberRange": sequence_range,
        }
        if shard.parent_id:
            described["ParentShardId"] = shard.parent_id
        return described

    def _position(self, shard: _Shard, kind: str, sequence: str | None) -> int:
        """The sequence number an iterator of `kind` reads after."""
        if kind == "TRIM_HORIZON":
            return max(shard.starting_sequence - 1, shard.trimmed_through or 0)
        if kind == "LATEST":
            return shard.last_sequence()
        if kind not in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") or sequence is None:
            raise client_error("GetShardIterator", "ValidationException", f"bad iterator {kind}")
        number = int(sequence)
        beyond = shard.ending_sequence is not None and number > shard.ending_sequence
        if number < shard.starting_sequence or beyond:
            raise client_error(
                "GetShardIterator",
                "ValidationException",
                f"Invalid SequenceNumber {sequence} for shard {shard.shard_id}",
            )
        after = number - 1 if kind == "AT_SEQUENCE_NUMBER" else number
        self._check_trim(shard, after, "GetShardIterator")
        return after

    @staticmethod
    def _check_trim(shard: _Shard, after: int, operation: str) -> None:
        if shard.trimmed_through is not None and after < shard.trimmed_through:
            raise client_error(
                operation,
                "TrimmedDataAccessException",
                "The operation attempted to read past the oldest stream record in a shard.",
            )

    def _issue(self, shard_id: str, after: int) -> str:
        token = f"iterator-{next(self._tokens):06d}-{shard_id[-8:]}"
        self._iterators[token] = _Iterator(shard_id, after, self._clock())
        return token

    def _read(self, token: str, iterator: _Iterator | None, limit: int | None) -> dict[str, Any]:
        if iterator is None:
            raise client_error("GetRecords", "ValidationException", "Invalid ShardIterator")
        if limit is not None and not 1 <= limit <= GET_RECORDS_LIMIT:
            raise client_error("GetRecords", "ValidationException", "Limit out of range")
        if iterator.expired or self._clock() - iterator.issued_at >= ITERATOR_TTL_S:
            raise client_error("GetRecords", "ExpiredIteratorException", "Iterator expired")
        shard = self._listed_shard(iterator.shard_id, "GetRecords")
        self._check_trim(shard, iterator.after, "GetRecords")
        pending = [r for r in shard.records if _seq(r) > iterator.after]
        page = pending[: min(limit or GET_RECORDS_LIMIT, self.records_per_read)]
        response: dict[str, Any] = {"Records": [_as_botocore(r) for r in page]}
        if self.cut_by_size and len(page) == self.records_per_read < len(pending):
            # `records_per_read` stands for GetRecords' 1 MB cut: the size fastparse
            # reports for a real page, as large as the service's cap.
            response[PAGE_BYTES] = 1024 * 1024
        after = _seq(page[-1]) if page else iterator.after
        if shard.ending_sequence is None or len(page) < len(pending):
            response["NextShardIterator"] = self._issue(shard.shard_id, after)
        return response


def _as_botocore(record: dict[str, Any]) -> dict[str, Any]:
    """botocore parses ApproximateCreationDateTime into a datetime."""
    raw = copy.deepcopy(record)
    stamp = raw["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(stamp, int | float):
        raw["dynamodb"]["ApproximateCreationDateTime"] = datetime.fromtimestamp(stamp, UTC)
    return raw
