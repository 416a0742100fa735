"""A counting reverse proxy on 127.0.0.1: forwards to moto, notes every AWS operation.

Put between the worker and moto as AWS_ENDPOINT_URL_DYNAMODB_STREAMS, it shows how
often an idle worker calls GetRecords (each call is a billed streams read request, and
an idle shard should cost at most 2 a second). Requests and answers pass through
unchanged; each call is recorded with its `X-Amz-Target` operation and the time it
arrived.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, proxy: CountingProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy


class CountingProxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._lock = threading.Lock()
        self._calls: list[tuple[float, str]] = []
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, operation: str) -> None:
        with self._lock:
            self._calls.append((time.monotonic(), operation))

    def count(self, operation: str, since: float = 0.0, until: float = float("inf")) -> int:
        with self._lock:
            return sum(1 for at, op in self._calls if op == operation and since <= at < until)

    def upstream(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self._upstream_port, timeout=30)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def do_POST(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy.record((self.headers.get("X-Amz-Target") or "").rpartition(".")[2])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        status, reply_headers, reply = self._forward(proxy, body, headers)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _forward(
        self, proxy: CountingProxy, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = proxy.upstream()
            try:
                self._upstream.request("POST", self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                return response.status, response.getheaders(), response.read()
            except (ConnectionError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        return None
