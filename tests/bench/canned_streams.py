"""A canned DynamoDB Streams endpoint: S closed shards of N order records, served flat out.

It stands in for the DynamoDB Streams service in the backlog-drain benchmark. A real
stream cannot be filled with a known backlog on demand, and moto builds every
GetRecords answer through its own model (slower than the consumers under test), so
this test double answers the JSON 1.0 protocol (`POST /`,
`X-Amz-Target: DynamoDBStreams_20120810.<Op>`, `application/x-amz-json-1.0`) from
response bytes built at start-up: serving a page is one socket write. It runs as its
own process so it never shares a GIL with the consumer being measured:

    python -m tests.bench.canned_streams --shards 4 --records 5000 --port 8765

Operations: DescribeStream (paged by Limit / ExclusiveStartShardId, every shard
CLOSED with an EndingSequenceNumber and no parent), GetShardIterator (TRIM_HORIZON,
AT_ / AFTER_SEQUENCE_NUMBER; LATEST is the end of a closed shard) and GetRecords (up
to Limit records, default 1000; no NextShardIterator once a closed shard is read to
its end). Iterators are `canned|<shard>|<offset>`. Unlike the service it does not
throttle (5 reads/s per shard): the consumers pace themselves. `GET /stats` returns
the calls served so far, per operation.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.bench import dataset

TARGET_PREFIX = "DynamoDBStreams_20120810."
DEFAULT_LIMIT = 1000
DESCRIBE_LIMIT = 100
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class CannedError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class CannedStream:
    """The stream's data and every answer, pre-encoded; thread-safe to serve."""

    def __init__(self, shards: int, records: int, seed: int = 0) -> None:
        self.shards = shards
        self.records = records
        self._encoded: list[list[bytes]] = []
        self._pages: dict[tuple[int, int, int], bytes] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        for shard in range(shards):
            changes = dataset.shard_changes(shard, records, seed)
            self._encoded.append([_dumps(dataset.stream_record(c)) for c in changes])
            for offset in range(0, max(records, 1), DEFAULT_LIMIT):
                self._pages[(shard, offset, DEFAULT_LIMIT)] = self._build_page(
                    shard, offset, DEFAULT_LIMIT
                )

    # -- answers -----------------------------------------------------------------------

    def _shard_json(self, shard: int) -> dict[str, Any]:
        return {
            "ShardId": dataset.shard_id(shard),
            "SequenceNumberRange": {
                "StartingSequenceNumber": dataset.sequence_number(shard, 0),
                "EndingSequenceNumber": dataset.sequence_number(shard, max(self.records - 1, 0)),
            },
        }

    def describe_stream(self, request: dict[str, Any]) -> bytes:
        self._check_arn(request.get("StreamArn"))
        limit = int(request.get("Limit") or DESCRIBE_LIMIT)
        start = 0
        if request.get("ExclusiveStartShardId"):
            start = self._shard_index(request["ExclusiveStartShardId"]) + 1
        chosen = list(range(start, min(start + limit, self.shards)))
        description: dict[str, Any] = {
            "StreamArn": dataset.STREAM_ARN,
            "StreamLabel": dataset.STREAM_LABEL,
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "CreationRequestDateTime": dataset.BASE_EPOCH_S - 86_000,
            "TableName": dataset.TABLE,
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "Shards": [self._shard_json(s) for s in chosen],
        }
        if chosen and chosen[-1] < self.shards - 1:
            description["LastEvaluatedShardId"] = dataset.shard_id(chosen[-1])
        return _dumps({"StreamDescription": description})

    def get_shard_iterator(self, request: dict[str, Any]) -> bytes:
        self._check_arn(request.get("StreamArn"))
        shard = self._shard_index(request.get("ShardId", ""))
        kind = request.get("ShardIteratorType")
        if kind == "TRIM_HORIZON":
            offset = 0
        elif kind == "LATEST":
            offset = self.records
        elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            offset = dataset.offset_of(shard, str(request.get("SequenceNumber", "0")))
            if not 0 <= offset < self.records:
                raise CannedError("ValidationException", "SequenceNumber is not in this shard")
            offset += kind == "AFTER_SEQUENCE_NUMBER"
        else:
            raise CannedError("ValidationException", f"bad ShardIteratorType {kind!r}")
        return _dumps({"ShardIterator": _iterator(shard, offset)})

    def get_records(self, request: dict[str, Any]) -> bytes:
        shard, offset = self._parse_iterator(str(request.get("ShardIterator", "")))
        limit = int(request.get("Limit") or DEFAULT_LIMIT)
        if not 1 <= limit <= DEFAULT_LIMIT:
            raise CannedError("ValidationException", "Limit must be within 1..1000")
        page = self._pages.get((shard, offset, limit))
        if page is None:  # an unusual position or limit: build once, then serve from memory
            page = self._build_page(shard, offset, limit)
            with self._lock:
                self._pages[(shard, offset, limit)] = page
        return page

    def _build_page(self, shard: int, offset: int, limit: int) -> bytes:
        end = min(offset + limit, self.records)
        body = b'{"Records":[' + b",".join(self._encoded[shard][offset:end]) + b"]"
        if end < self.records:  # a closed shard read to its end has no next iterator
            body += b',"NextShardIterator":' + _dumps(_iterator(shard, end))
        return body + b"}"

    # -- parsing -----------------------------------------------------------------------

    @staticmethod
    def _check_arn(arn: object) -> None:
        if arn != dataset.STREAM_ARN:
            raise CannedError("ResourceNotFoundException", f"Requested resource not found: {arn}")

    def _shard_index(self, shard_id: str) -> int:
        for shard in range(self.shards):
            if dataset.shard_id(shard) == shard_id:
                return shard
        raise CannedError("ResourceNotFoundException", f"shard {shard_id!r} not found")

    def _parse_iterator(self, iterator: str) -> tuple[int, int]:
        parts = iterator.split("|")
        if len(parts) != 3 or parts[0] != "canned" or not all(p.isdigit() for p in parts[1:]):
            raise CannedError("ValidationException", "Invalid ShardIterator")
        shard, offset = int(parts[1]), int(parts[2])
        if shard >= self.shards or offset > self.records:
            raise CannedError("ValidationException", "Invalid ShardIterator")
        return shard, offset

    def handler(self, operation: str) -> Callable[[dict[str, Any]], bytes]:
        handlers = {
            "DescribeStream": self.describe_stream,
            "GetShardIterator": self.get_shard_iterator,
            "GetRecords": self.get_records,
        }
        if operation not in handlers:
            raise CannedError("UnknownOperationException", f"{operation} is not canned")
        return handlers[operation]

    def count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1


def _iterator(shard: int, offset: int) -> str:
    return f"canned|{shard}|{offset}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def handler_class(stream: CannedStream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: botocore pools its connections
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or "").removeprefix(TARGET_PREFIX)
            stream.count(operation)
            try:
                body = stream.handler(operation)(json.loads(raw or b"{}"))
            except CannedError as exc:
                error = {"__type": ERROR_PREFIX + exc.code, "message": str(exc)}
                self._write(exc.status, _dumps(error))
                return
            except (ValueError, TypeError) as exc:
                error = {"__type": ERROR_PREFIX + "SerializationException", "message": str(exc)}
                self._write(400, _dumps(error))
                return
            self._write(200, body)

        def do_GET(self) -> None:
            if self.path != "/stats":
                self._write(404, b"{}")
                return
            with stream._lock:
                calls = dict(stream.calls)
            self._write(200, _dumps(calls))

        def _write(self, status: int, body: bytes) -> None:
            reason = b"OK" if status == 200 else b"Error"
            head = (
                b"HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                b"Content-Length: %d\r\nx-amzn-RequestId: %s\r\n\r\n"
                % (status, reason, len(body), uuid.uuid4().hex.encode())
            )
            self.wfile.write(head + body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def serve(shards: int, records: int, port: int, seed: int = 0) -> None:
    started = time.monotonic()
    stream = CannedStream(shards, records, seed)
    server = _Server(("127.0.0.1", port), handler_class(stream))
    built_s = time.monotonic() - started
    ready = {"ready": True, "port": server.server_address[1], "stream_arn": dataset.STREAM_ARN}
    print(json.dumps({**ready, "build_s": round(built_s, 3)}), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.canned_streams")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--records", type=int, default=5000, help="records per shard")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.shards, args.records, args.port, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


class CannedServer:
    """The canned stream served from a thread of this process, for tests that drive the
    worker as a subprocess against a multi-shard stream (moto has one shard per stream)."""

    def __init__(self, *, shards: int, records: int, seed: int = 0) -> None:
        self.stream = CannedStream(shards, records, seed)
        self._server = _Server(("127.0.0.1", 0), handler_class(self.stream))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
