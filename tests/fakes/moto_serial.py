"""Stands in for DynamoDB's isolation of transactions: moto_server with each table's
requests served one at a time (the moto of the test suite and of the bench).

moto 5.2's TransactWriteItems deep-copies every table it touches before it starts and,
when a condition fails, puts that copy back. moto_server is threaded, so under
concurrent requests (the worker parks changes, its lane retrier delivers them, its
lease keeper renews, all at once) the copy races with other writes (a 500,
`dictionary changed size during iteration`) and a failed condition undoes writes other
requests made meanwhile: a parked change or a checkpoint can vanish, a delivered one
comes back. DynamoDB itself isolates transactions per item. Serializing the requests on
each table restores that isolation; other tables and services (the orders table the
bench writes, SQS long polls, Streams reads) stay concurrent. The copy's cost still
grows with the table; requests slower than `SLOW_S` are reported on stderr.

    python -m tests.fakes.moto_serial -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import Any

from moto import server
from moto.dynamodb.responses import DynamoHandler

SLOW_S = 0.25
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_unlocked = DynamoHandler.call_action


def _tables(params: dict[str, Any]) -> list[str]:
    """The tables a request touches, sorted (locks are taken in that order)."""
    names = {params["TableName"]} if "TableName" in params else set()
    names |= set(params.get("RequestItems", {}))
    for item in params.get("TransactItems", []):
        names |= {op["TableName"] for op in item.values() if "TableName" in op}
    return sorted(names)


def _serial_call_action(self: DynamoHandler) -> Any:
    params = getattr(self, "params", None) or json.loads(self.raw_body or "{}")
    with _guard:
        locks = [_locks.setdefault(name, threading.Lock()) for name in _tables(params)]
    with contextlib.ExitStack() as held:
        for lock in locks:
            held.enter_context(lock)
        started = time.perf_counter()
        try:
            return _unlocked(self)
        finally:
            took = time.perf_counter() - started
            if took > SLOW_S:
                action = self.headers.get("X-Amz-Target", "?").rsplit(".", 1)[-1]
                print(f"slow dynamodb {action}: {took * 1000:.0f} ms", file=sys.stderr, flush=True)


if __name__ == "__main__":
    DynamoHandler.call_action = _serial_call_action  # type: ignore[method-assign]  # patching moto's handler, on purpose
    server.main(sys.argv[1:])
