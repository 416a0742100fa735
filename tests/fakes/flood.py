"""A hostile webhook receiver: answers every POST with a huge body, generated as it goes.

It counts the body bytes the kernel accepted before the client hung up, which is how
the tests see that the webhook sink stops reading: the count stays near the socket
buffers' size instead of the advertised body. Nothing is held in memory on this side
either (one 64 KiB block, sent again and again).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

BLOCK = b"x" * 65536
FRAMINGS = ("content-length", "chunked", "close")


class FloodReceiver:
    """Serves connections one at a time on 127.0.0.1, one response each; `sent` holds
    the body bytes of each response, `finished` is released once per response."""

    def __init__(self, *, status: int = 200, body_bytes: int, framing: str) -> None:
        assert framing in FRAMINGS
        self._status = status
        self._body_bytes = body_bytes
        self._framing = framing
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # so that close() is seen between accepts
        self._closing = threading.Event()
        self.sent: list[int] = []
        self.finished = threading.Semaphore(0)  # released when a response ended, either way
        self._thread = threading.Thread(target=self._serve, name="flood", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            self.sent.append(0)
            self._serve_one(conn)

    def _serve_one(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._read_request(conn)
                conn.sendall(self._head())
                self._send_body(conn)
            except OSError:
                pass  # the client hung up: what we came to see
            finally:
                self.finished.release()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before its request ended")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)

    def _head(self) -> bytes:
        lines = [f"HTTP/1.1 {self._status} Flood", "Content-Type: application/octet-stream"]
        if self._framing == "content-length":
            lines.append(f"Content-Length: {self._body_bytes}")
        elif self._framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append("Connection: close")  # the body ends when the connection does
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _send_body(self, conn: socket.socket) -> None:
        while self.sent[-1] < self._body_bytes:
            block = BLOCK[: self._body_bytes - self.sent[-1]]
            if self._framing == "chunked":
                conn.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            else:
                conn.sendall(block)
            self.sent[-1] += len(block)
        if self._framing == "chunked":
            conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=30)
        self._listener.close()

    def __enter__(self) -> FloodReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
