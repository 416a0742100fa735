"""Per-process test doubles: AWS clients whose calls are yield points, and the sinks.

`SimClient` stands in for a boto3 client inside one simulated process: the request
travels (latency), may meet a fault (throttling, 5xx), lands on the shared fake at one
instant, and the answer travels back (a crash then means: written, never answered).

`RecordedSink` records the attempts of a real sink (email, EventBridge) whose client is
a `SimSes` or `SimEventBridge`: throttling, permanent refusals (SES MessageRejected,
an EventBridge entry's InvalidArgument), per-entry failures of a PutEvents call, and
answers lost after the write landed.

`RemoteSink` stands in for the webhook sink (an HTTP receiver: latency, 5xx/429
transient, 4xx permanent, 413 for a too-large body, timeouts that may or may not have
reached the receiver). `BufferedSink` stands in for the log sink: `local`, `send`
buffers, `flush` makes durable, and a crash loses the unflushed buffer.
"""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tests.fakes.statetable import client_error
from tests.sim.ledger import Attempt
from worker.core.errors import DeliveryError
from worker.core.models import Notification
from worker.delivery.sinks.email import ID_HEADER
from worker.delivery.sinks.eventbridge import entry_size

if TYPE_CHECKING:
    from tests.sim.world import Host

THROTTLE_CODES = {
    "state": ("ProvisionedThroughputExceededException", "ThrottlingException"),
    "streams": ("LimitExceededException", "ThrottlingException"),
}


class SimClient:
    """Stands in for a boto3 client (dynamodb or dynamodbstreams) in one process."""

    def __init__(self, inner: Any, host: Host, service: str) -> None:
        self._inner = inner
        self._host = host
        self._service = service

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)
        host, service = self._host, self._service

        def call(**kwargs: Any) -> Any:
            host.io(host.latency())
            error, ambiguous = host.fault(service, name)
            if error is not None and not ambiguous:
                host.io(host.latency())
                raise error
            result = method(**kwargs)
            host.io(host.latency())
            if error is not None:
                raise error  # landed, but the caller is told it failed (a 500 after the write)
            return result

        return call


def fault_error(service: str, operation: str, kind: int) -> ClientError:
    if kind == 0:
        code = THROTTLE_CODES[service][0]
        return client_error(operation, code, "Rate exceeded", 400)
    if kind == 1:
        code = THROTTLE_CODES[service][1]
        return client_error(operation, code, "Rate exceeded", 400)
    return client_error(operation, "InternalServerError", "Internal server error", 500)


class _Recorder:
    def __init__(self, name: str, host: Host) -> None:
        self.name = name
        self._host = host

    def _attempt(self, notification: Notification) -> Attempt:
        host = self._host
        task = host.world.sched.current
        attempt = Attempt(
            tick=host.tick(),
            t=host.now(),
            process=host.life.name,
            term=host.life.term,
            sink=self.name,
            event_id=notification.id,
            order=notification.order_id,
            shard=notification.shard_id,
            seq=int(notification.sequence_number),
            # The retrier's pass and its pullers run as tasks "lane" and "lane-<n>".
            lane=task is not None and task.name.startswith("lane"),
        )
        host.ledger.attempts.append(attempt)
        what = "lane_attempt" if attempt.lane else "attempt"
        host.trace(what, self.name, notification.id, notification.order_id)
        return attempt

    def _end(self, attempt: Attempt) -> None:
        attempt.end_tick = self._host.tick()
        attempt.end_t = self._host.now()


class RemoteSink(_Recorder):
    """Stands in for the webhook sink: a receiver on the network (see module docstring)."""

    local = False

    def send(self, notification: Notification) -> None:
        host = self._host
        # The attempt starts when the dispatcher calls (no yield before it is recorded:
        # the dispatcher's stop check and the call are one step), then the I/O begins.
        attempt = self._attempt(notification)
        try:
            host.io(0.0)
            self._exchange(notification)
        finally:
            if not host.process.dead:
                self._end(attempt)

    def _exchange(self, notification: Notification) -> None:
        host, plan = self._host, self._host.scenario.sink
        latency = host.rng.uniform(*plan.latency_s)
        if not host.world.active:
            # Settling: the endpoint is healthy (no timeouts either), so the retry lane
            # can drain and the oracle may require every parked change resolved.
            latency = min(latency, plan.timeout_s * 0.9)
        status = host.sink_status(notification)
        reach = latency / 2  # the receiver answers half-way; the reply travels back
        if latency > plan.timeout_s:
            host.io(min(reach, plan.timeout_s))
            if reach < plan.timeout_s and status == 200:
                host.deliver(self.name, notification)
            host.io(max(0.0, plan.timeout_s - reach))
            raise DeliveryError("timed out", transient=True)
        host.io(reach)
        if status == 200:
            host.deliver(self.name, notification)
        host.io(latency - reach)
        if status in (500, 503, 429):
            pause = plan.retry_after_s if status != 500 else None  # a Retry-After header
            raise DeliveryError(f"HTTP {status}", transient=True, retry_after_s=pause)
        if status != 200:
            raise DeliveryError(f"HTTP {status}", transient=False)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class BufferedSink(_Recorder):
    """Stands in for the log sink: buffered lines, durable only once flushed."""

    local = True

    def __init__(self, name: str, host: Host) -> None:
        super().__init__(name, host)
        self._buffer: list[Notification] = []

    def send(self, notification: Notification) -> None:
        attempt = self._attempt(notification)
        self._host.io(0.0)
        self._buffer.append(notification)
        self._end(attempt)

    def flush(self) -> None:
        self._host.io(0.0)
        lines, self._buffer = self._buffer, []
        for notification in lines:
            self._host.deliver(self.name, notification)

    def close(self) -> None:
        self.flush()


class RecordedSink(_Recorder):
    """A real sink (email, EventBridge) whose calls the ledger records as attempts: from
    the dispatcher's (or the lane's) call to its answer. The receiver's durable
    deliveries are recorded by the simulated clients below."""

    local = False

    def __init__(self, inner: Any, host: Host) -> None:
        super().__init__(inner.name, host)
        self._inner = inner

    def send(self, notification: Notification) -> None:
        attempt = self._attempt(notification)
        try:
            self._inner.send(notification)
        finally:
            if not self._host.process.dead:
                self._end(attempt)

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        self._inner.close()


class _SimService:
    """A simulated AWS sink service: latency both ways, throttling while the world is
    active, permanent refusals at any time, and sometimes an answer lost after the
    write landed (the caller sees a 500 and sends again: at-least-once)."""

    def __init__(self, host: Host, sink: str) -> None:
        self._host = host
        self._sink = sink

    def _travel(self) -> None:
        host = self._host
        host.io(host.rng.uniform(*host.scenario.notify.latency_s))

    def _chance(self, p: float, *, active_only: bool = True) -> bool:
        host = self._host
        if active_only and not host.world.active:
            return False
        return p > 0 and host.rng.random() < p

    def _lost_answer(self, operation: str) -> None:
        if self._chance(self._host.scenario.notify.p_ambiguous):
            raise client_error(operation, "InternalFailure", "Internal failure", 500)


class SimSes(_SimService):
    """Stands in for the SES v2 client: `send_email` with a raw message."""

    def __init__(self, host: Host) -> None:
        super().__init__(host, "email")

    def send_email(self, **kwargs: Any) -> dict[str, Any]:
        plan = self._host.scenario.notify
        self._travel()
        raw = email.message_from_bytes(kwargs["Content"]["Raw"]["Data"])
        notification_id = str(raw[ID_HEADER])
        if self._chance(plan.p_throttle):
            self._travel()
            raise client_error("SendEmail", "TooManyRequestsException", "Maximum rate", 429)
        if self._chance(plan.p_reject, active_only=False):
            self._travel()
            raise client_error("SendEmail", "MessageRejected", "Email address is not verified")
        self._host.world.deliver_id(self._sink, notification_id)
        self._travel()
        self._lost_answer("SendEmail")
        return {"MessageId": notification_id}


class SimEventBridge(_SimService):
    """Stands in for the EventBridge client: `put_events`, each entry answered alone."""

    def __init__(self, host: Host) -> None:
        super().__init__(host, "eventbridge")

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        plan = self._host.scenario.notify
        assert 1 <= len(Entries) <= 10
        assert sum(entry_size(e) for e in Entries) <= 256 * 1024
        self._travel()
        if self._chance(plan.p_throttle):
            self._travel()
            raise client_error("PutEvents", "ThrottlingException", "Rate exceeded")
        results: list[dict[str, Any]] = []
        for entry in Entries:
            if self._chance(plan.p_entry_invalid, active_only=False):
                results.append({"ErrorCode": "InvalidArgument", "ErrorMessage": "refused"})
            elif self._chance(plan.p_entry_throttle):
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                self._host.world.deliver_id(self._sink, json.loads(entry["Detail"])["id"])
                results.append({"EventId": f"e-{len(results)}"})
        self._travel()
        self._lost_answer("PutEvents")
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}
