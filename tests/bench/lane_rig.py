"""The lane benchmark's instruments: a webhook that fails on cue, an SQS drain, a lag
poller and a paced writer, each recording what it saw with this machine's wall clock.

- `Webhook` answers the local receiver's requests: 503 while `down`, 500 forever for a
  `poisoned` order, else 200; it records every answer (key, order, sequence, status).
- `SqsDrain` receives and deletes the queue's messages on a thread, keeping each one's
  `SentTimestamp` (when moto accepted the worker's SendMessage) and `MessageId` (a
  redelivery of one message keeps its id; a second send by the worker gets a new one).
- `LagPoller` reads `/metrics` of the workers every quarter second: the largest
  `orderstream_shard_lag_seconds` and the parked count, per sample.
- `PacedWriter` makes status changes at a steady rate over a set of orders (cycling
  Pending, Processing, Shipped, Delivered with `force`, so any number of changes per
  order are real changes), recording when each write returned.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.bench.processes import HarnessError, http_call
from tests.fakes.receiver import Reply, Request
from writer import OrderRepository, OrderStatus

CYCLE = (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.PENDING)
LAG_LINE = re.compile(r"^orderstream_shard_lag_seconds\{[^}]*\} (\S+)$", re.MULTILINE)
PARKED_LINE = re.compile(r'^orderstream_lane_parked\{sink="webhook"\} (\S+)$', re.MULTILINE)


@dataclass(frozen=True)
class Answer:
    key: str
    order_id: str
    sequence: int
    new_status: str
    status: int
    at: float  # wall clock when the request arrived


class Webhook:
    """The receiver's responder; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False
        self._poisoned: str | None = None
        self._answers: list[Answer] = []

    def set_down(self, down: bool) -> None:
        with self._lock:
            self._down = down

    def poison(self, order_id: str | None) -> None:
        with self._lock:
            self._poisoned = order_id

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        at = time.time()
        with self._lock:
            status = 200
            if self._down:
                status = 503
            elif body["order_id"] == self._poisoned:
                status = 500
            self._answers.append(
                Answer(
                    request.header("Idempotency-Key") or "",
                    body["order_id"],
                    int(body["sequence_number"]),
                    body["new_status"],
                    status,
                    at,
                )
            )
        return Reply(status)

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)


@dataclass(frozen=True)
class Message:
    message_id: str
    body: dict[str, Any]
    sent_at: float  # SentTimestamp, epoch seconds
    received_at: float


class SqsDrain:
    """Receives and deletes every message of one queue until closed."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._receive()
            except Exception as exc:  # surfaced by messages()
                self._errors.append(exc)
                self._stop.wait(0.5)

    def _receive(self) -> None:
        reply = self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=300,
            AttributeNames=["SentTimestamp"],
        )
        got = reply.get("Messages", [])
        now = time.time()
        with self._lock:
            for m in got:
                sent = int(m["Attributes"]["SentTimestamp"]) / 1000
                self._messages.append(Message(m["MessageId"], json.loads(m["Body"]), sent, now))
        if got:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ]
            self._client.delete_message_batch(QueueUrl=self._url, Entries=entries)

    def messages(self) -> list[Message]:
        if len(self._errors) > 20:
            raise HarnessError(f"the SQS drain keeps failing: {self._errors[-1]}")
        with self._lock:
            return list(self._messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class LagSample:
    at: float
    lag_s: float | None  # the largest shard lag of any worker answering; None: none did
    parked: float | None


class LagPoller:
    """Samples `/metrics` of every port added, four times a second."""

    def __init__(self) -> None:
        self._ports: list[int] = []
        self._lock = threading.Lock()
        self.samples: list[LagSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-poller", daemon=True)
        self._thread.start()

    def watch(self, port: int) -> None:
        with self._lock:
            self._ports.append(port)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                ports = list(self._ports)
            lags: list[float] = []
            parked: list[float] = []
            for port in ports:
                try:
                    status, body = http_call(port, "GET", "/metrics")
                except OSError:
                    continue  # not up yet, or killed
                if status == 200:
                    text = body.decode()
                    lags += [float(v) for v in LAG_LINE.findall(text)]
                    parked += [float(v) for v in PARKED_LINE.findall(text)]
            self.samples.append(
                LagSample(time.time(), max(lags) if lags else None, max(parked) if parked else None)
            )

    def between(self, start: float, end: float) -> list[LagSample]:
        return [s for s in self.samples if start <= s.at <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class Write:
    order_id: str
    new_status: str
    at: float  # wall clock when the write returned


class PacedWriter:
    """Up to `rate` status changes per second for `seconds`, on a thread; orders at
    random."""

    def __init__(
        self, repo: OrderRepository, orders: list[tuple[str, str]], rate: float, seed: int
    ) -> None:
        self._repo = repo
        self._orders = orders
        self._rate = rate
        self._rng = random.Random(seed)
        self._step = dict.fromkeys(orders, 0)
        self.writes: list[Write] = []
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def _run(self, seconds: float) -> None:
        started = time.monotonic()
        try:
            # For `seconds` whatever the rate reached: a slow write delays the next ones
            # (the rate reached is reported), never the end.
            for i in range(round(seconds * self._rate)):
                time.sleep(max(0.0, started + i / self._rate - time.monotonic()))
                if time.monotonic() >= started + seconds:
                    return
                user, order = self._rng.choice(self._orders)
                status = CYCLE[self._step[(user, order)] % len(CYCLE)]
                self._step[(user, order)] += 1
                self._repo.set_status(user, order, status, force=True)
                self.writes.append(Write(order, status.value, time.time()))
        except Exception as exc:
            self.error = exc

    def join(self) -> list[Write]:
        assert self._thread is not None
        self._thread.join()
        if self.error is not None:
            raise HarnessError(f"the writer failed: {self.error}") from self.error
        return self.writes
