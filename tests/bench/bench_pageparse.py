"""Micro-benchmark: one canned 1,000-record GetRecords page, orjson dicts vs typed Structs.

    python -m tests.bench.bench_pageparse [--rounds 7]

µs per record (best round) for: parse + free the page; the hook plus
`StreamSource.read` (StreamRecords) + free; and that plus `detect` of every record.
Not part of `run_bench`: it measures the parsing choice (issue 15), not the service.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from tests.bench.canned_streams import CannedStream
from tests.fakes.partial import RecordsOnly
from worker.core.detect import detect
from worker.core.models import StreamRecord
from worker.poller.fastparse import _DECODER, _parse_get_records, _parse_untyped
from worker.poller.stream import Page, StreamSource

SHARD = "shardId-00000001704067200000-00000000"


class _Client(RecordsOnly):
    def __init__(self) -> None:
        self.parsed: dict[str, Any] = {}

    def get_records(self, *, ShardIterator: str, Limit: int = 0) -> dict[str, Any]:  # noqa: N803
        del ShardIterator, Limit
        return self.parsed


def _reader(body: bytes, hook: Callable[..., None]) -> Callable[[], Page]:
    client = _Client()
    source = StreamSource(client)

    def read() -> Page:
        client.parsed = {}
        hook({"status_code": 200, "body": body}, client.parsed)
        page = source.read(SHARD, "it")
        client.parsed = {}
        return page

    return read


def _detected(read: Callable[[], Page]) -> Callable[[], Any]:
    def run() -> Any:
        page = read()
        return [detect(r, 0.0) for r in page.records if isinstance(r, StreamRecord)]

    return run


def _per_record_us(fn: Callable[[], Any], records: int, rounds: int, loops: int = 20) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            result = fn()
            del result  # the free is part of the cost
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6 / records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    body = CannedStream(1, 1000).get_records({"ShardIterator": "canned|0|0"})
    records = 1000
    gc.collect()
    print(f"page: {len(body):,} bytes, {records} records; µs/record, best of {args.rounds}")
    cases = {
        "parse+free": (lambda: orjson.loads(body), lambda: _DECODER.decode(body)),
        "read (StreamRecords)+free": (
            _reader(body, _parse_untyped),
            _reader(body, _parse_get_records),
        ),
    }
    cases["read+detect+free"] = (
        _detected(cases["read (StreamRecords)+free"][0]),
        _detected(cases["read (StreamRecords)+free"][1]),
    )
    print(f"{'':28}{'orjson':>10}{'msgspec':>10}")
    for name, (plain, typed) in cases.items():
        before = _per_record_us(plain, records, args.rounds)
        after = _per_record_us(typed, records, args.rounds)
        print(f"{name:28}{before:10.2f}{after:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
