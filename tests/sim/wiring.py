"""One simulated `worker run` process, wired as `worker/wiring.py` wires production.

The real Runner, ThreadLauncher, ShardReader, BatchProcessor, Dispatcher, retries,
DynamoCheckpointStore, Lease and DeadLetterStore, and (when the scenario turns them on)
the retry lane's LaneStore and LaneRetrier and the remote sink's GuardedSink (breaker,
rate limit, disabled flag in the state table), with only the edges replaced: AWS
clients by `SimClient`s over the shared fakes, sinks by the simulation's doubles, and
threads, events and clocks by the process's `ProcessRuntime`. Keep this in step with
`worker/wiring.py` (as `build_pipeline` and `build_worker` change, change this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.sim.doubles import (
    BufferedSink,
    RecordedSink,
    RemoteSink,
    SimClient,
    SimEventBridge,
    SimSes,
)
from worker.batch.processor import BatchProcessor
from worker.core.rules import parse_rules
from worker.core.stats import Stats
from worker.delivery.breaker import BreakerPolicy, CircuitBreaker
from worker.delivery.dispatch import Dispatcher
from worker.delivery.enrich import Profiles
from worker.delivery.lane import LaneStore
from worker.delivery.ratelimit import limiter
from worker.delivery.retrier import LaneRetrier
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink
from worker.delivery.sinks.email import EmailSink
from worker.delivery.sinks.email_templates import EmailTemplates
from worker.delivery.sinks.enriched import EnrichedSink
from worker.delivery.sinks.eventbridge import EventBridgeSink
from worker.delivery.sinks.guarded import GuardedSink
from worker.poller.runner import Runner, RunnerConfig
from worker.poller.stream import StreamSource
from worker.state.checkpoints import DynamoCheckpointStore
from worker.state.dlq import DeadLetterStore
from worker.state.lease import Lease
from worker.state.sinkstate import SinkStateStore

if TYPE_CHECKING:
    from tests.sim.runtime import SimSignal
    from tests.sim.world import Host

STATE_TABLE = "orderstream-state"
TEMPLATES = EmailTemplates()  # the shipped ones: compiled once for every run
APP = "orderstream"


def notify_sink(name: str, host: Host, profiles: Profiles, stop: SimSignal) -> Sink:
    """The real email or EventBridge sink over its simulated client, behind enrichment
    (the profile read through the page's cache, as `app.build_sinks` wraps them)."""
    inner: Sink
    if name == "email":
        inner = EmailSink(client=SimSes(host), sender="shop@example.com", templates=TEMPLATES)
    else:
        inner = EventBridgeSink(
            client=SimEventBridge(host), bus="default", runtime=host.runtime, stop=stop
        )
    return RecordedSink(EnrichedSink(sink=inner, profiles=profiles, in_body=True), host)


def build_profiles(host: Host) -> Profiles | None:
    """As `app.build_pipeline`: a cache when a sink needs the users' profiles."""
    if not host.scenario.notify.sinks:
        return None
    return Profiles(
        client=host.world.profiles, table="Users", ttl_s=60.0, clock=host.runtime.monotonic
    )


def build_sinks(
    host: Host, state: Any, stats: Stats, stop: SimSignal, profiles: Profiles | None = None
) -> dict[str, Sink]:
    """The sinks, the remote ones guarded as `worker/wiring.py::guard` does when the scenario
    says so: its clocks are the process's, its rate waits are waits on the process's stop
    Signal (virtual time, cut short by SIGTERM as app.py's `stop.wait`), its disabled
    flag and published breaker live in the fake state table."""
    plan = host.scenario.lane
    sinks: dict[str, Sink] = {}
    for name in host.scenario.sinks:
        if name == "log":
            sinks[name] = BufferedSink(name, host)
            continue
        if name == "webhook":
            sinks[name] = RemoteSink(name, host)
        else:
            assert profiles is not None
            sinks[name] = notify_sink(name, host, profiles, stop)
        if plan.guarded:
            runtime = host.runtime
            policy = BreakerPolicy(
                failures=plan.breaker_failures,
                ratio=plan.breaker_ratio,
                open_s=plan.breaker_open_s,
            )
            states = SinkStateStore(
                client=state, table=STATE_TABLE, app=APP, scope="Users", clock=runtime.time
            )
            sinks[name] = GuardedSink(
                sink=sinks[name],
                breaker=CircuitBreaker(policy=policy, clock=runtime.monotonic),
                limiter=limiter(plan.rate, clock=runtime.monotonic, sleep=stop.wait),
                states=states,
                stats=stats,
                clock=runtime.monotonic,
                stop=stop,
            )
    return sinks


def build(host: Host, stop: SimSignal) -> tuple[Runner, Dispatcher]:
    """A worker process's runner and dispatcher (the latter closed at exit, as cli.py does)."""
    sc = host.scenario
    runtime = host.runtime
    state: Any = SimClient(host.world.state, host, "state")
    streams: Any = SimClient(host.world.streams, host, "streams")
    lease = Lease(
        state, STATE_TABLE, APP, host.life.name, sc.lease_s, clock=runtime.time, scope="Users"
    )
    stats = Stats()
    dlq = DeadLetterStore(state, STATE_TABLE, APP)
    store = DynamoCheckpointStore(state, STATE_TABLE, APP, lease, runtime.time)
    profiles = build_profiles(host)
    sinks = build_sinks(host, state, stats, stop, profiles)
    lane = retrier = None
    if sc.lane.on:  # as build_pipeline does when ORDERSTREAM_RETRY_SCHEDULE is not off
        lane = LaneStore(client=state, table=STATE_TABLE, app=APP, fence=lease, clock=runtime.time)
        retrier = LaneRetrier(
            lane=lane,
            table="Users",
            sinks=sinks,
            schedule=sc.lane.schedule,
            stats=stats,
            runtime=runtime,
            concurrency=min(8, sc.concurrency),
            poll_s=sc.lane.poll_s,
            lease_valid=lambda: runtime.time() < lease.valid_until_s,
        )
    dispatcher = Dispatcher(
        sinks=sinks,
        rules=parse_rules(None, sc.routes, sc.sinks),
        policy=RetryPolicy(sc.max_attempts, sc.retry_base_s, sc.retry_cap_s),
        dlq=dlq,
        stats=stats,
        concurrency=sc.concurrency,
        progress_every_s=sc.progress_every_s,
        stop_grace_s=max(0.5, sc.shutdown_s * 0.6),  # as app.py sets it
        runtime=runtime,
        lane=lane,
        schedule=sc.lane.schedule,
        on_park=retrier.wake if retrier else None,
    )
    processor = BatchProcessor(dispatcher, dlq, stats, runtime.time, enrich=profiles)
    config = RunnerConfig(
        table="Users",
        stream_arn=host.world.streams.stream_arn,
        start=sc.start,
        idle_wait_s=sc.idle_wait_s,
        discovery_interval_s=sc.discovery_s,
        stats_interval_s=30.0,
        shutdown_s=sc.shutdown_s,
        max_shards=64,
    )
    runner = Runner(
        config=config,
        source=StreamSource(streams),
        tables=state,
        store=store,
        lease=lease,
        processor=processor,
        stats=stats,
        stop=stop,
        runtime=runtime,
        retrier=retrier,
    )
    return runner, dispatcher
