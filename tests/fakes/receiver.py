"""A real HTTP receiver on 127.0.0.1, standing in for a customer's webhook endpoint.

The webhook sink is tested against a real socket, a real HTTP parser and real
keep-alive connections, not a mocked `urllib3`. The receiver runs
`http.server.ThreadingHTTPServer` on a thread (one handler thread per connection, so
concurrent deliveries really overlap) and answers from a script:

- `script(*replies)` queues the answers to the next requests, in arrival order;
- `always(reply)` sets the answer once the script is used up (200 by default);
- `respond_with(fn)` decides per request (e.g. by order id); `fn` may block on an
  event to hold one order back, and returns None to fall through to the script.

A `Reply` sets the status, a `Retry-After` header, and a delay before answering (to
hang past a client's read timeout; `close()` cuts every delay short). Every request
is recorded, in arrival order, with its headers, raw body, arrival time and the
client's source port (one per pooled connection).
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0  # wait before answering; cut short when the receiver closes
    body: bytes = b'{"ok":true}'


@dataclass(frozen=True)
class Request:
    """One request, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    arrived_at: float  # time.monotonic() when the body was read
    client_port: int  # the client's source port: one per (pooled) connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request], Reply | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a dead client never blocks close()
    request_queue_size = 128  # many concurrent connects: the default 5 drops SYNs (1 s stall)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return  # the client gave up (read timeout, failed TLS handshake): expected
        super().handle_error(request, client_address)


class Receiver:
    """A scriptable HTTP(S) receiver; use as a context manager or call `close()`."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Condition()
        self._script: deque[Reply] = deque()
        self._default = Reply()
        self._responder: Responder | None = None
        self._requests: list[Request] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_class(self))
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="receiver",
            daemon=True,
        )
        self._thread.start()

    # -- scripting ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"{self._scheme}://127.0.0.1:{port}/hook"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in arrival order."""
        with self._lock:
            self._script.extend(replies)

    def fail_times(self, count: int, status: int = 503) -> None:
        self.script(*[Reply(status)] * count)

    def always(self, reply: Reply) -> None:
        """The answer once the script is used up."""
        with self._lock:
            self._default = reply

    def respond_with(self, responder: Responder | None) -> None:
        """Decide per request; returning None falls through to the script."""
        with self._lock:
            self._responder = responder

    # -- what arrived ------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.requests]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Block until `count` requests have arrived; fail at the deadline."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"{len(self._requests)} of {count} requests in {timeout}s")
            return list(self._requests)

    # -- the handler's side ------------------------------------------------------------

    def _arrived(self, request: Request) -> Reply:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._lock.notify_all()
            responder = self._responder
        reply = responder(request) if responder is not None else None
        with self._lock:
            if reply is None:
                reply = self._script.popleft() if self._script else self._default
        return reply

    def _answered(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _handler_class(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection pooling is observable
        timeout = 5  # an idle kept-alive connection is closed after this
        disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                arrived_at=time.monotonic(),
                client_port=int(self.client_address[1]),
            )
            reply = receiver._arrived(request)
            try:
                if reply.delay_s:
                    receiver.closing.wait(reply.delay_s)
                self._answer(reply)
            except (ConnectionError, ssl.SSLError):
                self.close_connection = True  # the client stopped waiting
            finally:
                receiver._answered()

        def _answer(self, reply: Reply) -> None:
            self.send_response(reply.status)
            if reply.retry_after is not None:
                self.send_header("Retry-After", reply.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            return None  # no request lines on stderr

    return Handler
