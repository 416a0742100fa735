"""A fault-injecting HTTP proxy between the worker and the moto server.

It stands in for the AWS faults moto never produces: throttling, 5xx, connection
resets, slow responses, ExpiredIteratorException and TrimmedDataAccessException. Each
request is forwarded to moto unless a queued fault for its operation (the
`X-Amz-Target` suffix, e.g. `GetRecords`) is due; every answered fault is recorded.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_ERRORS = {
    "throttle": (
        400,
        "com.amazonaws.dynamodb.v20120810#LimitExceededException",
        "Rate exceeded for shard",
    ),
    "5xx": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
    "expired": (
        400,
        "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
        "Iterator expired",
    ),
    "trimmed": (
        400,
        "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
        "Requested data is beyond the trim horizon",
    ),
}
KINDS = (*_ERRORS, "reset", "slow")


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    delay_s: float = 0.0  # for "slow"


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        self.injected: list[tuple[str, str]] = []  # (operation, kind) as answered
        self.calls: dict[str, int] = defaultdict(int)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, operation: str, kind: str, times: int = 1, delay_s: float = 0.0) -> None:
        """Answer the next `times` calls of `operation` with the fault `kind`."""
        assert kind in KINDS, kind
        with self._lock:
            self._queued[operation].extend(Fault(kind, delay_s) for _ in range(times))

    def pending(self, operation: str) -> int:
        with self._lock:
            return len(self._queued[operation])

    def _next_fault(self, operation: str) -> Fault | None:
        with self._lock:
            self.calls[operation] += 1
            queue = self._queued[operation]
            return queue.popleft() if queue else None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                fault = proxy._next_fault(operation)
                if fault is not None:
                    with proxy._lock:
                        proxy.injected.append((operation, fault.kind))
                    if fault.kind == "reset":
                        self.close_connection = True
                        self.connection.shutdown(2)  # drop it: the client sees a reset
                        return
                    if fault.kind == "slow":
                        time.sleep(fault.delay_s)
                    else:
                        status, code, message = _ERRORS[fault.kind]
                        self._send(
                            status,
                            [("Content-Type", "application/x-amz-json-1.0")],
                            json.dumps({"__type": code, "message": message}).encode(),
                        )
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                status, response_headers, payload = proxy._forward("POST", self.path, headers, body)
                self._send(status, response_headers, payload)

            do_GET = do_POST  # noqa: N815 - same handling

            def _send(self, status: int, headers: Any, payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler
