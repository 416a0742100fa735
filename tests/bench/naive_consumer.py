"""The baseline of the drain benchmark: the consumer a developer writes by hand with boto3.

A plain loop, shard after shard: GetRecords parsed by botocore, both images decoded
with boto3's TypeDeserializer, one JSON line per status change carrying the same
notification fields as the worker's log sink, and one checkpoint `put_item` per batch
to a DynamoDB table. No threads, no pacing, no retries beyond botocore's own. Each
line also carries `ts` (time.time() when the change was written out) so the harness
measures the same first-to-last-notification span as for the worker.

    python -m tests.bench.naive_consumer --stream-arn ARN --out FILE [--table NAME]

Endpoints come from the environment as boto3 reads them (AWS_ENDPOINT_URL_DYNAMODB_STREAMS,
AWS_ENDPOINT_URL_DYNAMODB).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

CHECKPOINT_TABLE = "naive-checkpoints"


def shard_ids(streams: Any, stream_arn: str) -> list[str]:
    ids: list[str] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        ids.extend(shard["ShardId"] for shard in description["Shards"])
        if not description.get("LastEvaluatedShardId"):
            return ids
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def notification(
    record: dict[str, Any], shard_id: str, decode: TypeDeserializer
) -> dict[str, Any] | None:
    """The notification for one record, or None if its status did not change."""
    data = record["dynamodb"]
    new = {k: decode.deserialize(v) for k, v in data["NewImage"].items()}
    old = {k: decode.deserialize(v) for k, v in data.get("OldImage", {}).items()}
    if new.get("Status") == old.get("Status"):
        return None
    created = data["ApproximateCreationDateTime"].astimezone(UTC)
    return {
        "type": "order.status_changed",
        "id": record["eventID"],
        "occurred_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user_id": new["UserID"],
        "order_id": new["SK"].removeprefix("ORDER#"),
        "old_status": old.get("Status"),
        "new_status": new["Status"],
        "amount": str(new["Amount"]),
        "shard_id": shard_id,
        "sequence_number": data["SequenceNumber"],
    }


def consume(stream_arn: str, out: Any, table: str) -> dict[str, int]:
    streams = boto3.client("dynamodbstreams")
    dynamodb = boto3.client("dynamodb")
    decode = TypeDeserializer()
    counts = {"records": 0, "notifications": 0, "checkpoints": 0, "get_records": 0}
    for shard_id in shard_ids(streams, stream_arn):
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            counts["get_records"] += 1
            records = response["Records"]
            for record in records:
                body = notification(record, shard_id, decode)
                if body is not None:
                    print(json.dumps({**body, "ts": time.time()}), file=out)
                    counts["notifications"] += 1
            counts["records"] += len(records)
            if records:
                dynamodb.put_item(
                    TableName=table,
                    Item={
                        "pk": {"S": "naive"},
                        "sk": {"S": shard_id},
                        "sequence_number": {"S": records[-1]["dynamodb"]["SequenceNumber"]},
                    },
                )
                counts["checkpoints"] += 1
            elif response.get("NextShardIterator"):
                time.sleep(0.5)  # an open shard with nothing new: wait a little
            iterator = response.get("NextShardIterator")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.naive_consumer")
    parser.add_argument("--stream-arn", required=True)
    parser.add_argument("--out", required=True, help="file for the JSON lines")
    parser.add_argument("--table", default=CHECKPOINT_TABLE, help="checkpoint table")
    args = parser.parse_args(argv)
    with open(args.out, "w", encoding="utf-8") as out:
        counts = consume(args.stream_arn, out, args.table)
    print(json.dumps({"event": "naive.done", **counts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
