"""Shard checkpoints and stream meetings in the state table, fenced by the app lease.

A checkpoint is the highest sequence number below which every record is delivered
or dead-lettered (docs: Delivery semantics). Each write is a transaction with a check
on the lease item, so a replica that lost its lease (paused, partitioned) can never
move a checkpoint the new owner depends on.

Everything is keyed by the stream ARN (which names the table and the stream's
creation): another table, or a re-created stream, never inherits a checkpoint.

A *meeting* records the first time the application met a stream and the shards listed
then: ORDERSTREAM_START applies to those alone. Every shard born later (children
above all) is read from its very first record, so a restart never re-applies LATEST,
and a child whose first records were trimmed before it was read is reported lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from worker.core.errors import LeaseLostError
from worker.core.models import Shard
from worker.state.statetable import app_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


CHECKPOINT_PREFIX = "CHECKPOINT#"
MEETING_PREFIX = "STREAM#"
LATEST = "LATEST"
TRIM_HORIZON = "TRIM_HORIZON"
FROM_START = "FROM_START"  # a shard born after the meeting: all of it is ours
SINCE_MEETING = "SINCE_MEETING"  # LATEST on a shard that waits for a parent: from then on


@dataclass(frozen=True)
class Checkpoint:
    """Where a shard stands. Only one of the three positions applies, in this order:

    - `sequence_number`: every record up to it is resolved; resume after it;
    - `first_unresolved`: nothing resolved yet, but this record was read: resume AT it
      (a LATEST iterator would skip it);
    - `not_before_s`: a LATEST start was anchored at this wall-clock time before any
      record was read: resume at TRIM_HORIZON, passing over records created earlier.
    """

    shard_id: str
    sequence_number: str | None  # None: nothing resolved yet
    finished: bool
    parent_id: str | None = None
    updated_at_ms: int = 0
    first_unresolved: str | None = None
    not_before_s: float | None = None
    # Derived from the meeting, not read from the table: written at the first open.
    derived: bool = False

    @property
    def unstarted(self) -> bool:
        """Known (recorded when first listed) but not yet read: no position at all."""
        return not self.finished and not (
            self.sequence_number or self.first_unresolved or self.not_before_s is not None
        )


@dataclass(frozen=True)
class Meeting:
    """The application's first meeting with a stream: where its shards begin."""

    start: str
    met_shards: frozenset[str]  # listed at the meeting: ORDERSTREAM_START applies
    met_at_s: float = 0.0
    finished: bool = False  # every shard read to its end (a disabled stream), or lost
    # Listed shards whose first record was already trimmed at the meeting: read from the
    # trim horizon (what came before was never ours). All others from their first
    # record, so a trim before anyone read them is reported, however late the first read.
    trimmed_before: frozenset[str] = frozenset()
    # Listed shards whose first record was trimmed, but which still held records at the
    # meeting: read from the first of those, so a later trim is reported too.
    resume_at: Mapping[str, str] = field(default_factory=dict)
    # Parents already aged out at the meeting: their records were never ours.
    aged_before: frozenset[str] = frozenset()
    # Listed shards already closed at the meeting (LATEST owes nothing of theirs).
    closed_before: frozenset[str] = frozenset()

    @classmethod
    def first(
        cls,
        *,
        start: str,
        shards: Sequence[Shard],
        firsts: Mapping[str, str | None],
        met_at_s: float,
    ) -> Meeting:
        """The meeting made of the listing then; `firsts` is each listed shard's answer
        to the trim probe (see `CheckpointStore.meet`)."""
        listed = frozenset(s.shard_id for s in shards)
        return cls(
            start=start,
            met_shards=listed,
            met_at_s=met_at_s,
            trimmed_before=frozenset(k for k, v in firsts.items() if v == ""),
            resume_at={k: v for k, v in firsts.items() if v},
            aged_before=frozenset(
                s.parent_id for s in shards if s.parent_id and s.parent_id not in listed
            ),
            closed_before=frozenset(s.shard_id for s in shards if s.closed),
        )

    def owing(self) -> frozenset[str]:
        """Listed shards that may hold records that are ours. One that ages out before
        its first read was recorded (a first discovery cut short, then a long outage)
        took them with it: reported lost. A closed shard owes nothing under LATEST, nor
        one that was closed with nothing left to read under TRIM_HORIZON."""
        if self.start == LATEST:
            return self.met_shards - self.closed_before
        return self.met_shards - (self.closed_before & self.trimmed_before)

    def initial_position(self, shard: Shard) -> str:
        """ORDERSTREAM_START for the shards listed at the first meeting; every later
        shard, children included, from its start.

        LATEST means every change made since the meeting, exactly: a shard is read from
        its first record, passing over what was created before the meeting. Opening it
        at its tip instead would depend on when it is first opened (a crash before that,
        a parent to wait for, a cap on shards), and skip what came in between.
        """
        if shard.shard_id not in self.met_shards:
            return FROM_START
        if self.start == LATEST:
            return SINCE_MEETING
        return FROM_START if self._first_record(shard) else TRIM_HORIZON

    def _first_record(self, shard: Shard) -> str | None:
        """Where a listed shard's records that are ours begin, as of the meeting; None
        for one that held nothing readable then (read from the trim horizon)."""
        if shard.shard_id in self.resume_at:
            return self.resume_at[shard.shard_id]
        return None if shard.shard_id in self.trimmed_before else shard.starting_sequence

    def resume(self, shard: Shard, saved: Checkpoint | None) -> tuple[Checkpoint | None, str]:
        """Where a reader of `shard` begins: its checkpoint, or its initial position.
        A shard read since the meeting starts from a time anchor at the meeting (the
        same for every owner, so it needs no write of its own)."""
        initial = self.initial_position(shard)
        if saved is not None and saved.unstarted:
            saved = None  # only a record that the shard is ours: start it as new
        if saved is not None or shard.shard_id not in self.met_shards:
            return saved, initial
        first = self._first_record(shard)
        anchor = Checkpoint(shard.shard_id, None, False, shard.parent_id, derived=True)
        if initial == SINCE_MEETING:
            # At the shard's first record as of the meeting (a trim of it is reported),
            # passing over what was created before the meeting.
            anchor = replace(anchor, first_unresolved=first, not_before_s=self.met_at_s)
            return anchor, FROM_START if first else TRIM_HORIZON
        if first and first != shard.starting_sequence:
            return replace(anchor, first_unresolved=first), FROM_START
        return None, initial


class CheckpointStore(Protocol):
    """The seam readers keep their place through: shard checkpoints and the stream's meeting."""

    def load_all(self, stream_arn: str) -> dict[str, Checkpoint]:
        """Every checkpoint saved for the stream, by shard id; read consistently, all of it."""
        ...

    def save(self, stream_arn: str, checkpoint: Checkpoint) -> None:
        """Write one shard's checkpoint; raises LeaseLostError once the lease is not ours."""
        ...

    def meet(
        self,
        stream_arn: str,
        start: str,
        shards: Sequence[Shard],
        trimmed: Callable[[Shard], str | None] = lambda _shard: None,
    ) -> Meeting:
        """The stream's meeting: recorded now with `start` if this is the first one.

        `trimmed` tells, for a shard listed then, whether its first record is already
        gone (asked only at the first meeting): None if not; if so, the first record
        still there, or "" when there is none."""
        ...

    def met_streams(self, table_arn: str) -> dict[str, bool]:
        """The streams of a table met so far, and whether each is finished."""
        ...

    def finish_stream(self, stream_arn: str) -> None:
        """A stream is done with: a disabled one read to its end, or gone."""
        ...


def table_arn_of(stream_arn: str) -> str:
    """`arn:...:table/Users/stream/2024-...` -> `arn:...:table/Users`."""
    return stream_arn.split("/stream/", 1)[0]


class Fence(Protocol):
    """What fences a write: a condition that holds only while our lease does (`Lease`)."""

    def fence(self) -> dict[str, Any]:
        """A TransactWriteItems ConditionCheck that fails once the lease is not ours."""
        ...


class DynamoCheckpointStore:
    """Checkpoints and meetings in the state table, each write fenced by the lease when given."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        app: str,
        fence: Fence | None,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._table = table
        self._pk = app_pk(app)
        self._fence = fence
        self._clock = clock

    def load_all(self, stream_arn: str) -> dict[str, Checkpoint]:
        """A consistent Query of this stream's CHECKPOINT# items, page after page."""
        checkpoints: dict[str, Checkpoint] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": self._pk},
                ":prefix": {"S": f"{CHECKPOINT_PREFIX}{stream_arn}#"},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            for item in page.get("Items", []):
                checkpoint = _from_item(item)
                checkpoints[checkpoint.shard_id] = checkpoint
            if "LastEvaluatedKey" not in page:
                return checkpoints
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def save(self, stream_arn: str, checkpoint: Checkpoint) -> None:
        """A Put of the whole item (only the positions it has), fenced; stamps `updated_at_ms`."""
        item: dict[str, Any] = {
            "pk": {"S": self._pk},
            "sk": {"S": f"{CHECKPOINT_PREFIX}{stream_arn}#{checkpoint.shard_id}"},
            "stream_arn": {"S": stream_arn},
            "shard_id": {"S": checkpoint.shard_id},
            "finished": {"BOOL": checkpoint.finished},
            "updated_at_ms": {"N": str(int(self._clock() * 1000))},
        }
        if checkpoint.sequence_number is not None:
            item["sequence_number"] = {"S": checkpoint.sequence_number}
        if checkpoint.first_unresolved is not None:
            item["first_unresolved"] = {"S": checkpoint.first_unresolved}
        if checkpoint.not_before_s is not None:
            item["not_before_ms"] = {"N": str(int(checkpoint.not_before_s * 1000))}
        if checkpoint.parent_id:
            item["parent_id"] = {"S": checkpoint.parent_id}
        self._write({"Put": {"TableName": self._table, "Item": item}})

    def meet(
        self,
        stream_arn: str,
        start: str,
        shards: Sequence[Shard],
        trimmed: Callable[[Shard], str | None] = lambda _shard: None,
    ) -> Meeting:
        """The stored meeting; else this listing is the first: shards probed, put if absent."""
        key = {"pk": {"S": self._pk}, "sk": {"S": MEETING_PREFIX + stream_arn}}
        found = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if "Item" in found:
            return _meeting(found["Item"])
        meeting = Meeting.first(
            start=start,
            shards=shards,
            firsts={s.shard_id: trimmed(s) for s in shards},
            met_at_s=int(self._clock() * 1000) / 1000,
        )
        item: dict[str, Any] = {
            **key,
            "stream_arn": {"S": stream_arn},
            "start": {"S": start},
            "met_at_ms": {"N": str(round(meeting.met_at_s * 1000))},
        }
        sets = {
            "met_shards": meeting.met_shards,
            "aged_before": meeting.aged_before,
            "trimmed_before": meeting.trimmed_before,
            "closed_before": meeting.closed_before,
            "resume_at": {f"{shard}|{first}" for shard, first in meeting.resume_at.items()},
        }
        item.update({name: {"SS": sorted(values)} for name, values in sets.items() if values})
        self._write(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        return meeting

    def met_streams(self, table_arn: str) -> dict[str, bool]:
        """A consistent Query of the table's STREAM# items (a handful of streams: one page)."""
        page = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": self._pk},
                ":prefix": {"S": f"{MEETING_PREFIX}{table_arn}/stream/"},
            },
            ConsistentRead=True,
        )  # a table has a handful of streams at most: one page
        return {
            item["stream_arn"]["S"]: bool(item.get("finished", {}).get("BOOL", False))
            for item in page.get("Items", [])
        }

    def finish_stream(self, stream_arn: str) -> None:
        """Mark the meeting finished, fenced; a stream never met is left alone."""
        key = {"pk": {"S": self._pk}, "sk": {"S": MEETING_PREFIX + stream_arn}}
        found = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if "Item" in found:
            item = {**found["Item"], "finished": {"BOOL": True}}
            self._write({"Put": {"TableName": self._table, "Item": item}})

    def _write(self, operation: dict[str, Any]) -> None:
        """One write, in a transaction with the lease check when fenced."""
        if self._fence is None:
            put = dict(operation["Put"])
            self._client.put_item(**put)
            return
        fence: Any = self._fence.fence()
        try:
            items: Any = [fence, operation]
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise LeaseLostError("checkpoint refused: the app lease is not ours") from exc
            raise


def _meeting(item: dict[str, Any]) -> Meeting:
    return Meeting(
        start=item["start"]["S"],
        met_shards=frozenset(item.get("met_shards", {}).get("SS", [])),
        met_at_s=int(item["met_at_ms"]["N"]) / 1000,
        trimmed_before=frozenset(item.get("trimmed_before", {}).get("SS", [])),
        resume_at=dict(entry.split("|", 1) for entry in item.get("resume_at", {}).get("SS", [])),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
        aged_before=frozenset(item.get("aged_before", {}).get("SS", [])),
        closed_before=frozenset(item.get("closed_before", {}).get("SS", [])),
    )


def _from_item(item: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        shard_id=item["shard_id"]["S"],
        sequence_number=item.get("sequence_number", {}).get("S"),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
        parent_id=item.get("parent_id", {}).get("S"),
        updated_at_ms=int(item.get("updated_at_ms", {}).get("N", "0")),
        first_unresolved=item.get("first_unresolved", {}).get("S"),
        not_before_s=int(item["not_before_ms"]["N"]) / 1000 if "not_before_ms" in item else None,
    )
