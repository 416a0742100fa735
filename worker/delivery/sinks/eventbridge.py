"""The EventBridge sink: `PutEvents` in calls of up to 10 entries, failures per entry.

The dispatcher sends one change at a time per order, many orders at once (up to
ORDERSTREAM_CONCURRENCY), and waits for each answer before the order's next change.
So the sink batches by group commit, with no timer: a `send` queues its entry; if no
call is on the wire its caller makes one with the entries queued then (at most 10, at
most 256 KB in all, EventBridge's limits), while later callers queue behind it and the
first of them makes the next call. Each caller gets its own entry's answer: a failed
entry (`FailedEntryCount`, its `ErrorCode`) raises for that change alone, so only the
failed entries are retried, each through the dispatcher's usual path (retries, the
retry lane, the DLQ), joining a later call; the others are delivered. An order's next
change is queued only once the one before it was accepted, so order per (order, sink)
is kept. Sequential senders (one order, the redrive) simply get calls of one entry.

An entry over 256 KB (Source, DetailType, Detail and Resources, as EventBridge counts)
can never be accepted: dead-lettered at once with its size.

After a stop (SIGTERM) no call starts: entries still queued then are refused unsent
(`SinkUnavailableError`, as a guarded sink refuses), so their changes are read again
after the restart instead of reaching EventBridge after the stop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.models import NOTIFICATION_TYPE, Notification
from worker.core.runtime import THREADS, Runtime, Signal
from worker.delivery.sinks.aws_errors import delivery_error, transient_code

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES = 10  # PutEvents entries per call
MAX_BYTES = 256 * 1024  # one entry, and one call's entries together
DEFAULT_SOURCE = "orderstream"


def entry_size(entry: Mapping[str, Any]) -> int:
    """An entry's size as EventBridge counts it against its 256 KB limit."""
    size = 14 if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


class _Slot:
    """One queued entry and, once its call answered, what became of it."""

    def __init__(self, entry: PutEventsRequestEntryTypeDef, size: int, wake: Signal) -> None:
        self.entry = entry
        self.size = size
        self.wake = wake  # set when answered, or when it may make the next call
        self.done = False
        self.error: DeliveryError | None = None

    def finish(self, error: DeliveryError | None) -> None:
        self.done, self.error = True, error
        self.wake.set()


class EventsClient(Protocol):
    """The one EventBridge call the sink makes: the boto3 client, or a fake."""

    def put_events(self, *, Entries: list[Any]) -> Mapping[str, Any]:  # noqa: N803 (boto3's name)
        """Up to ten entries (built typed by `send`), each answered alone."""
        ...


class EventBridgeSink:
    """PutEvents by group commit: concurrent sends share a call, each gets its own answer."""

    name = "eventbridge"
    local = False

    def __init__(
        self,
        *,
        client: EventsClient,
        bus: str,
        source: str = DEFAULT_SOURCE,
        runtime: Runtime = THREADS,
        stop: Signal | None = None,
    ) -> None:
        """`runtime` gives the signals queued callers wait on (the simulation's own);
        once `stop` is set, no call starts."""
        self._client = client
        self._bus = bus
        self._source = source
        self._runtime = runtime
        self._stop = stop
        self._lock = threading.Lock()  # never held over a call
        self._queue: list[_Slot] = []
        self._calling = False

    def send(self, notification: Notification) -> None:
        """Queue the entry, then make the next call or wait for one; raises this entry's error."""
        entry: PutEventsRequestEntryTypeDef = {
            "Source": self._source,
            "DetailType": NOTIFICATION_TYPE,
            "Detail": json.dumps(notification.body(), separators=(",", ":")),
            "EventBusName": self._bus,
        }
        size = entry_size(entry)
        if size > MAX_BYTES:
            raise DeliveryError(
                f"eventbridge: entry of {size} bytes is over EventBridge's {MAX_BYTES}-byte limit",
                transient=False,
            )
        slot = _Slot(entry, size, self._runtime.event())
        with self._lock:
            self._queue.append(slot)
        while True:
            with self._lock:
                if slot.done:
                    break
                batch = self._take() if not self._calling else None
            if batch is None:
                slot.wake.wait()
                slot.wake.clear()  # then look again: answered, or our turn to call
                continue
            self._call(batch)
        if slot.error is not None:
            raise slot.error

    def _take(self) -> list[_Slot]:
        """The queue's first entries for one call (under the lock); the caller calls."""
        batch: list[_Slot] = []
        size = 0
        while self._queue and len(batch) < MAX_ENTRIES:
            if batch and size + self._queue[0].size > MAX_BYTES:
                break
            slot = self._queue.pop(0)
            batch.append(slot)
            size += slot.size
        self._calling = True
        return batch

    def _call(self, batch: list[_Slot]) -> None:
        """One PutEvents; every slot of it is answered whatever happens, then the next
        queued caller is woken to make the next call."""
        try:
            if self._stop is not None and self._stop.is_set():
                refused = SinkUnavailableError("eventbridge: stopping, not sent")
                for slot in batch:
                    slot.finish(refused)
                return
            answer = self._client.put_events(Entries=[slot.entry for slot in batch])
            self._answer(batch, answer.get("Entries", []))
        except (ClientError, BotoCoreError) as exc:
            error = delivery_error("eventbridge", exc)
            for slot in batch:
                slot.finish(error)
        except Exception as exc:
            error = DeliveryError(f"eventbridge: {type(exc).__name__}: {exc}", transient=False)
            for slot in batch:
                slot.finish(error)
        finally:
            for slot in batch:
                if not slot.done:  # a BaseException (interrupt) mid-call: not known sent
                    slot.finish(DeliveryError("eventbridge: call interrupted", transient=True))
            with self._lock:
                self._calling = False
                head = self._queue[0] if self._queue else None
            if head is not None:
                head.wake.set()

    @staticmethod
    def _answer(batch: list[_Slot], results: Sequence[Mapping[str, Any]]) -> None:
        for index, slot in enumerate(batch):
            result = results[index] if index < len(results) else {}
            code = result.get("ErrorCode")
            if result.get("EventId") and not code:
                slot.finish(None)
            elif not code:  # no answer for this entry: not known to be accepted
                slot.finish(DeliveryError("eventbridge: no result for the entry", transient=True))
            else:
                message = result.get("ErrorMessage", "")
                slot.finish(
                    DeliveryError(f"eventbridge: {code}: {message}", transient=transient_code(code))
                )

    def flush(self) -> None:
        """Nothing buffered: a send returned only once its entry was accepted."""
        return None  # every send returned only once its entry was accepted

    def close(self) -> None:
        """Nothing to close: the sink keeps no connection of its own."""
        return None
