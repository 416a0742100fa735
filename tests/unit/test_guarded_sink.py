"""GuardedSink: refuses without calling the endpoint, counts only ill health, disables on
410. Virtual clocks, an in-memory state store, logs captured as events."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from botocore.exceptions import EndpointConnectionError
from structlog.testing import capture_logs

from tests.fakes.clock import VirtualClock
from tests.fakes.notify import notification
from worker.core.errors import DeliveryError, SinkUnavailableError
from worker.core.models import Notification
from worker.core.stats import Stats
from worker.delivery.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from worker.delivery.ratelimit import TokenBucket
from worker.delivery.sinks.guarded import GuardedSink
from worker.ops.health import HealthServer
from worker.state.sinkstate import SinkState


class ScriptedSink:
    """Answers each send with the next scripted error (None: delivered)."""

    name = "webhook"
    local = False

    def __init__(self) -> None:
        self.script: list[DeliveryError | None] = []
        self.calls = 0

    def send(self, notification: Notification) -> None:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryStates:
    """The SinkStateStore surface GuardedSink uses, in memory."""

    def __init__(self) -> None:
        self.items: dict[str, SinkState] = {}
        self.published: list[str] = []
        self.reads = 0

    def read(self, name: str) -> SinkState:
        self.reads += 1
        return self.items.get(name) or SinkState(name)

    def disable(self, name: str, reason: str) -> None:
        self.items[name] = SinkState(name, disabled=True, reason=reason)

    def enable(self, name: str) -> SinkState:
        before = self.read(name)
        self.items[name] = SinkState(name)
        return before

    def publish_breaker(self, name: str, state: str) -> None:
        self.published.append(state)


TRANSIENT = DeliveryError("webhook: HTTP 503", transient=True)
GONE = DeliveryError("webhook: HTTP 410 Gone", transient=False, gone=True)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def inner() -> ScriptedSink:
    return ScriptedSink()


@pytest.fixture
def states() -> MemoryStates:
    return MemoryStates()


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def guarded(
    inner: ScriptedSink, states: MemoryStates, stats: Stats, clock: VirtualClock
) -> GuardedSink:
    breaker = CircuitBreaker(policy=BreakerPolicy(failures=3, open_s=30), clock=clock)
    return GuardedSink(
        sink=inner,
        breaker=breaker,
        states=states,
        stats=stats,
        clock=clock,
        refresh_s=10,
    )


def send(sink: GuardedSink) -> BaseException | None:
    try:
        sink.send(notification())
    except DeliveryError as exc:
        return exc
    return None


def test_an_open_breaker_refuses_without_calling_the_endpoint(
    guarded: GuardedSink, inner: ScriptedSink, stats: Stats, states: MemoryStates
) -> None:
    inner.script = [TRANSIENT] * 3
    assert [send(guarded) for _ in range(3)] == [TRANSIENT] * 3
    refused = send(guarded)
    assert isinstance(refused, SinkUnavailableError)
    assert refused.transient
    assert inner.calls == 3
    assert stats.sinks()["webhook"] == {"breaker_open": 1, "disabled": 0, "refused": 1}
    assert states.published == ["open"]


def test_a_send_refused_unsent_by_the_sink_itself_is_not_a_failure(
    guarded: GuardedSink, inner: ScriptedSink, states: MemoryStates
) -> None:
    """Found by an attack on issue 17: entries the EventBridge sink refused at a stop
    counted as failures, so a clean stop opened the breaker and published it."""
    inner.script = [SinkUnavailableError("eventbridge: stopping, not sent")] * 5
    assert all(isinstance(send(guarded), SinkUnavailableError) for _ in range(5))
    assert send(guarded) is None  # not refused by the guard: the breaker stayed closed
    assert inner.calls == 6
    assert states.published == []


def test_the_half_open_probe_closes_it_and_is_published(
    guarded: GuardedSink, inner: ScriptedSink, clock: VirtualClock, states: MemoryStates
) -> None:
    inner.script = [TRANSIENT] * 3
    for _ in range(3):
        send(guarded)
    clock.advance(30)
    assert send(guarded) is None  # the probe, delivered
    assert states.published == ["open", "half_open", "closed"]
    assert inner.calls == 4


def test_a_permanent_4xx_is_not_ill_health(guarded: GuardedSink, inner: ScriptedSink) -> None:
    inner.script = [DeliveryError("webhook: HTTP 422", transient=False)] * 10
    for _ in range(10):
        assert not isinstance(send(guarded), SinkUnavailableError)
    assert inner.calls == 10


def test_retry_after_pauses_the_sink(
    guarded: GuardedSink, inner: ScriptedSink, clock: VirtualClock
) -> None:
    inner.script = [DeliveryError("webhook: HTTP 429", transient=True, retry_after_s=5)]
    send(guarded)
    assert isinstance(send(guarded), SinkUnavailableError)
    clock.advance(5)
    assert send(guarded) is None


def test_410_disables_durably_and_refuses_everything_after(
    guarded: GuardedSink, inner: ScriptedSink, states: MemoryStates, stats: Stats
) -> None:
    inner.script = [GONE]
    with capture_logs() as logs:
        assert send(guarded) is GONE  # the change that met the 410 carries gone=True
    assert [e for e in logs if e["event"] == "sink.disabled"] == [
        {"event": "sink.disabled", "log_level": "error", "sink": "webhook", "reason": str(GONE)}
    ]
    assert states.items["webhook"].disabled
    assert all(isinstance(send(guarded), SinkUnavailableError) for _ in range(5))
    assert inner.calls == 1
    assert stats.sinks()["webhook"]["disabled"] == 1


def test_an_enable_is_picked_up_at_the_next_refresh(
    guarded: GuardedSink,
    inner: ScriptedSink,
    states: MemoryStates,
    clock: VirtualClock,
    stats: Stats,
) -> None:
    inner.script = [GONE]
    send(guarded)
    states.enable("webhook")  # `worker sink enable webhook`, another process
    clock.advance(9)
    assert isinstance(send(guarded), SinkUnavailableError)  # not re-read yet
    clock.advance(1)
    with capture_logs() as logs:
        assert send(guarded) is None
    assert "sink.enabled" in [e["event"] for e in logs]
    assert stats.sinks()["webhook"]["disabled"] == 0


def test_a_sink_disabled_before_the_start_is_refused_from_the_first_send(
    guarded: GuardedSink, inner: ScriptedSink, states: MemoryStates
) -> None:
    states.disable("webhook", "webhook: HTTP 410 Gone")
    assert isinstance(send(guarded), SinkUnavailableError)
    assert inner.calls == 0


def test_an_enable_is_seen_while_only_parked_changes_wait(
    guarded: GuardedSink, inner: ScriptedSink, states: MemoryStates, clock: VirtualClock
) -> None:
    """Found by the newcomer review: the flag was re-read only on a send, and the lane
    retrier sends nothing to a sink out of reach, so an enable was never seen."""
    inner.script = [GONE]
    send(guarded)
    assert guarded.out_of_reach()
    states.enable("webhook")
    clock.advance(10)

    assert guarded.out_of_reach() is False


class SlowFirstRead(MemoryStates):
    """The first read of the flag is slow: a second caller arrives meanwhile."""

    def __init__(self, during: Callable[[], None]) -> None:
        super().__init__()
        self._during: Callable[[], None] | None = during

    def read(self, name: str) -> SinkState:
        during, self._during = self._during, None
        if during is not None:
            during()
        return super().read(name)


def test_no_send_goes_out_before_the_flag_was_read_once(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """Found by the newcomer review: after a restart, a send that came while another
    thread was reading the flag went out to a disabled sink."""
    outcomes: list[BaseException | None] = []
    states = SlowFirstRead(lambda: outcomes.append(send(guarded)))
    states.items["webhook"] = SinkState("webhook", disabled=True, reason="HTTP 410")
    guarded = GuardedSink(
        sink=inner, breaker=CircuitBreaker(clock=clock), states=states, clock=clock
    )

    outcomes.append(send(guarded))

    assert all(isinstance(o, SinkUnavailableError) for o in outcomes)
    assert len(outcomes) == 2
    assert inner.calls == 0


class ReadThenWait(MemoryStates):
    """The first read answers what was there when it began, after `during` ran."""

    def __init__(self, during: Callable[[], None]) -> None:
        super().__init__()
        self._during: Callable[[], None] | None = during

    def read(self, name: str) -> SinkState:
        answer = super().read(name)
        during, self._during = self._during, None
        if during is not None:
            during()
        return answer


def test_a_read_begun_before_a_410_does_not_enable_the_sink_again(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """Found by the second review: a flag read in flight when a 410 came answered
    "enabled" and undid the disable in memory."""
    sink: list[GuardedSink] = []

    def gone_meanwhile() -> None:
        inner.script = [GONE]
        send(sink[0])  # another thread's send meets the 410 during this read

    states = ReadThenWait(gone_meanwhile)
    sink.append(
        GuardedSink(sink=inner, breaker=CircuitBreaker(clock=clock), states=states, clock=clock)
    )

    send(sink[0])  # its first read was in flight during the 410

    assert sink[0].disabled
    assert isinstance(send(sink[0]), SinkUnavailableError)


def test_a_stop_during_the_flag_read_means_no_send(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """Found by the simulation (seeds 2263, 6809, ...): SIGTERM came while the first
    send of a restarted worker read the disabled flag, and the call went out after it."""
    stop = StopDuringWait()
    states = ReadThenWait(stop.set)
    guarded = GuardedSink(
        sink=inner, breaker=CircuitBreaker(clock=clock), states=states, clock=clock
    )

    assert guarded.pace(stop) is False
    assert inner.calls == 0


def test_a_stop_while_the_breakers_probe_is_published_means_no_send(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """Found by the simulation (seed 58630): the half-open probe's transition is written
    to the state table inside the send; a SIGTERM during that write still let the call
    out. The breaker is now passed in `pace`, under the caller's stop."""
    stop = StopDuringWait()
    states = MemoryStates()
    breaker = CircuitBreaker(policy=BreakerPolicy(failures=1, open_s=30), clock=clock)
    guarded = GuardedSink(sink=inner, breaker=breaker, states=states, clock=clock)
    inner.script = [TRANSIENT]
    send(guarded)  # opens the breaker
    clock.advance(30)  # the probe's turn
    states.publish_breaker = lambda name, state: stop.set()  # type: ignore[method-assign]  # a spy in place of the method

    assert guarded.pace(stop) is False
    assert inner.calls == 1  # only the call that opened it


def test_the_flag_is_read_once_per_refresh_period(
    guarded: GuardedSink, states: MemoryStates, clock: VirtualClock
) -> None:
    for _ in range(100):
        send(guarded)
        clock.advance(0.25)
    assert states.reads == 3  # at 0 s, 10 s and 20 s


def test_each_attempt_waits_for_a_rate_token(inner: ScriptedSink, clock: VirtualClock) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    guarded = GuardedSink(
        sink=inner,
        breaker=CircuitBreaker(clock=clock),
        limiter=TokenBucket(rate=2, clock=clock, sleep=sleep),
        clock=clock,
    )
    for _ in range(6):
        guarded.send(notification())
    assert sum(waits) == pytest.approx((6 - 2) / 2)


class StopDuringWait:
    """Stands in for a stop signal that is set while its holder waits (a SIGTERM)."""

    def __init__(self) -> None:
        self.flag = False

    def set(self) -> None:
        self.flag = True

    def clear(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float | None = None) -> bool:
        self.flag = True
        return True


def test_a_stop_during_the_rate_wait_means_no_send(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """Found by the adversarial review: a stop cut the token wait short and the send
    went ahead anyway, so SIGTERM let every waiting delivery out at once."""
    process_stop = StopDuringWait()
    guarded = GuardedSink(
        sink=inner,
        breaker=CircuitBreaker(clock=clock),
        limiter=TokenBucket(rate=1, clock=clock, sleep=process_stop.wait),
        clock=clock,
    )
    guarded.send(notification())  # the one token in the bucket
    assert guarded.pace(StopDuringWait()) is False  # the caller's own stop ends its wait
    assert isinstance(send(guarded), SinkUnavailableError)  # the process-wide one too
    assert inner.calls == 1


def test_a_stop_during_the_rate_wait_starts_no_call(
    inner: ScriptedSink, clock: VirtualClock
) -> None:
    """SIGTERM cuts the limiter's wait short (app.py sleeps on the stop): the call that
    was waiting must not go out after it (found by the simulation, seed 812)."""
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        stop.set()  # SIGTERM arrives while this caller waits for its token

    guarded = GuardedSink(
        sink=inner,
        breaker=CircuitBreaker(clock=clock),
        limiter=TokenBucket(rate=1, clock=clock, sleep=sleep),
        clock=clock,
        stop=stop,
    )
    guarded.send(notification())  # the bucket's one token: no wait
    with pytest.raises(SinkUnavailableError, match="stopping"):
        guarded.send(notification())
    assert inner.calls == 1
    assert guarded.breaker.state is BreakerState.CLOSED  # not held against the endpoint


class UnreadableStates(MemoryStates):
    """A state table whose reads fail until `up` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    def read(self, name: str) -> SinkState:
        if not self.up:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return super().read(name)


def test_a_disabled_flag_not_yet_read_lets_no_send_out(
    inner: ScriptedSink, stats: Stats, clock: VirtualClock
) -> None:
    states = UnreadableStates()
    states.disable("webhook", "HTTP 410 Gone before the restart")
    guarded = GuardedSink(
        sink=inner,
        breaker=CircuitBreaker(policy=BreakerPolicy(failures=3, open_s=30), clock=clock),
        states=states,
        stats=stats,
        clock=clock,
        refresh_s=10,
    )
    refused = send(guarded)
    assert isinstance(refused, SinkUnavailableError)
    assert refused.transient  # tried again later, not dead-lettered
    assert guarded.out_of_reach()
    assert inner.calls == 0
    states.up = True
    assert isinstance(send(guarded), SinkUnavailableError)  # now read: disabled
    assert inner.calls == 0
    assert guarded.disabled


@pytest.fixture
def metrics_server(stats: Stats) -> Iterator[HealthServer]:
    server = HealthServer(0, stats, threading.Event(), "127.0.0.1")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_metrics_show_the_breaker_and_the_disabled_flag(
    guarded: GuardedSink, inner: ScriptedSink, metrics_server: HealthServer
) -> None:
    inner.script = [TRANSIENT] * 3
    for _ in range(4):
        send(guarded)
    url = f"http://127.0.0.1:{metrics_server.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'orderstream_sink_breaker_open{sink="webhook"} 1.0' in text
    assert 'orderstream_sink_disabled{sink="webhook"} 0.0' in text
    assert 'orderstream_sink_refused_total{sink="webhook"} 1.0' in text
