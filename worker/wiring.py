"""The composition root: builds a running worker from settings and AWS clients."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError

from worker.aws import Clients, setup_errors
from worker.batch.processor import BatchProcessor
from worker.core.errors import ThrottledError, WorkerError
from worker.core.runtime import Signal
from worker.core.stats import Stats
from worker.delivery.breaker import BreakerPolicy, CircuitBreaker
from worker.delivery.dedup import DedupStore
from worker.delivery.dispatch import Dispatcher
from worker.delivery.enrich import Profiles
from worker.delivery.lane import LaneStore, Nudger
from worker.delivery.ratelimit import limiter
from worker.delivery.retrier import LaneRetrier
from worker.delivery.retrying import RetryPolicy
from worker.delivery.sinks import Sink
from worker.delivery.sinks.email import EmailSink
from worker.delivery.sinks.email_templates import EmailTemplates
from worker.delivery.sinks.enriched import EnrichedSink
from worker.delivery.sinks.eventbridge import EventBridgeSink
from worker.delivery.sinks.guarded import GuardedSink
from worker.delivery.sinks.log import LogSink
from worker.delivery.sinks.publish import sns_sink, sqs_sink
from worker.delivery.sinks.signing import LEGACY_SIGNATURE_HEADER, Signer
from worker.delivery.sinks.webhook import WebhookSink
from worker.delivery.sinks.webhook_target import loggable_url
from worker.ops import gctune
from worker.poller import fastparse, multiproc
from worker.poller.runner import Launcher, Runner, RunnerConfig, ThreadLauncher
from worker.poller.stream import StreamSource, latest_stream_arn
from worker.settings import WorkerSettings
from worker.state.checkpoints import DynamoCheckpointStore
from worker.state.dlq import DeadLetterStore
from worker.state.lease import FollowerLease, Lease
from worker.state.sinkstate import SinkStateStore
from worker.state.statetable import ensure_state_table
from writer import logs
from writer.argparsing import exit_with

log = structlog.get_logger()
SinkWrap = Callable[[str, Sink], Sink]


@dataclass
class Worker:
    """Everything `build_worker` made, for the CLI to run and the tests to inspect."""

    runner: Runner
    dispatcher: Dispatcher
    stats: Stats
    dlq: DeadLetterStore
    lease: Lease


def owner_id() -> str:
    """Unique per process, readable in `worker status`: host, pid, and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retry_policy(settings: WorkerSettings) -> RetryPolicy:
    """The in-burst retry policy from the ORDERSTREAM_RETRY_* settings."""
    return RetryPolicy(
        settings.max_attempts, settings.retry_base_ms / 1000, settings.retry_cap_ms / 1000
    )


def build_sinks(
    settings: WorkerSettings,
    clients: Clients,
    *,
    dynamodb: Any | None = None,
    stats: Stats | None = None,
    stop: Signal | None = None,
    profiles: Profiles | None = None,
    wrap: SinkWrap | None = None,
) -> dict[str, Sink]:
    """The configured sinks by name; settings.validate() has checked their targets.
    `wrap` sees each plain sink first (the demo announces what its sinks send).

    The remote ones are guarded (breaker, rate limit, disabled flag): with `dynamodb`
    the flag and the breaker's state live in the state table, else in memory only.
    Sinks that need the user's profile read it through `profiles` (the batch path's
    cache), or through a cache of their own when none is given."""
    states = None
    if dynamodb is not None:
        states = SinkStateStore(
            client=dynamodb,
            table=settings.state_table,
            app=settings.app,
            scope=settings.table,
            clock=time.time,
        )
    sinks = _plain_sinks(settings, clients, stop)
    if wrap is not None:
        sinks = {name: wrap(name, sink) for name, sink in sinks.items()}
    enriched = settings.enriched_sinks()
    if enriched and profiles is None:
        profiles = build_profiles(settings, dynamodb or clients.dynamodb(), stats)
    for name, in_body in enriched.items():
        assert profiles is not None
        sinks[name] = EnrichedSink(sink=sinks[name], profiles=profiles, in_body=in_body)
    for name, sink in sinks.items():
        if not sink.local:
            sinks[name] = guard(sink, settings, states=states, stats=stats, stop=stop)
    return sinks


def guard(
    sink: Sink,
    settings: WorkerSettings,
    *,
    states: SinkStateStore | None,
    stats: Stats | None,
    stop: Signal | None,
) -> GuardedSink:
    """A remote sink behind its breaker; the webhook also behind ORDERSTREAM_WEBHOOK_RATE.
    A rate wait ends early on a stop, so SIGTERM never waits out a slow bucket."""
    policy = BreakerPolicy(
        failures=settings.breaker_failures,
        ratio=settings.breaker_ratio,
        open_s=settings.breaker_open_s,
    )
    rate = settings.webhook_rate if sink.name == "webhook" else 0.0
    return GuardedSink(
        sink=sink,
        breaker=CircuitBreaker(policy=policy, clock=time.monotonic),
        limiter=limiter(rate, clock=time.monotonic, sleep=stop.wait if stop else time.sleep),
        states=states,
        stats=stats,
        clock=time.monotonic,
        stop=stop,
    )


def _plain_sinks(
    settings: WorkerSettings, clients: Clients, stop: Signal | None
) -> dict[str, Sink]:
    sinks: dict[str, Sink] = {}
    for name in settings.sinks:
        if name == "log":
            sinks[name] = LogSink(logs.json_line_writer())
        elif name == "webhook":
            if not settings.webhook_verify_tls:
                log.warning("webhook.tls_verification_off", url=loggable_url(settings.webhook_url))
            sinks[name] = WebhookSink(
                str(settings.webhook_url),
                webhook_signer(settings),
                settings.webhook_timeout_ms / 1000,
                settings.webhook_verify_tls,
                settings.concurrency,
                headers=settings.webhook_headers,
            )
        elif name == "sns":
            sinks[name] = sns_sink(clients.sns(), str(settings.sns_topic_arn))
        elif name == "sqs":
            sinks[name] = sqs_sink(clients.sqs(), str(settings.sqs_queue_url))
        elif name == "email":
            sinks[name] = EmailSink(
                client=clients.sesv2(),
                sender=str(settings.email_from),
                templates=EmailTemplates(settings.email_templates),
            )
        elif name == "eventbridge":
            sinks[name] = EventBridgeSink(
                client=clients.events(),
                bus=settings.eventbridge_bus,
                source=settings.eventbridge_source,
                stop=stop,
            )
    return sinks


def build_profiles(settings: WorkerSettings, dynamodb: Any, stats: Stats | None) -> Profiles:
    """The profile cache enrichment reads through (the orders table, not the state's)."""
    return Profiles(
        client=dynamodb,
        table=settings.table,
        ttl_s=settings.enrich_ttl_s,
        clock=time.monotonic,
        stats=stats,
        sleep=time.sleep,
    )


def webhook_signer(settings: WorkerSettings) -> Signer | None:
    """Standard Webhooks signatures when secrets are set; the legacy header only on
    request (it signs no timestamp, so a captured request replays forever)."""
    if not settings.webhook_secret:
        return None
    if settings.webhook_legacy_signature:
        log.warning("webhook.legacy_signature_on", header=LEGACY_SIGNATURE_HEADER)
    return Signer(keys=settings.webhook_secret, legacy=settings.webhook_legacy_signature)


def prepare_state(settings: WorkerSettings, clients: Clients) -> Any:
    """Check the orders table has a stream, then create the state table if needed: in
    that order, so a typo or the wrong region never leaves an empty state table behind
    (which would make `worker dlq` there answer as if all were well)."""
    with setup_errors(f"cannot prepare the state table {settings.state_table!r}"):
        dynamodb = clients.dynamodb()  # no region is a BotoCoreError here
        if not settings.stream_arn:
            try:
                latest_stream_arn(dynamodb, settings.table)
            except ThrottledError as exc:
                # A reader would retry this; at start-up, botocore's own failure (an
                # endpoint that does not answer, ...) is worded by setup_errors instead.
                if isinstance(exc.__cause__, BotoCoreError):
                    raise exc.__cause__ from None
                raise
        ensure_state_table(dynamodb, settings.state_table)
    return dynamodb


def build_dispatcher(
    settings: WorkerSettings,
    sinks: dict[str, Sink],
    dynamodb: Any,
    stats: Stats,
    dlq: DeadLetterStore,
    *,
    lane: LaneStore | None = None,
    on_park: Callable[[float, str], None] | None = None,
) -> Dispatcher:
    """Without `lane` (fleet mode for now) a change goes to the DLQ after its burst."""
    dedup = (
        DedupStore(
            dynamodb,
            table=settings.state_table,
            app=settings.app,
            ttl_s=settings.dedup_ttl_s,
            clock=time.time,
        )
        if settings.dedup
        else None
    )
    return Dispatcher(
        sinks=sinks,
        rules=settings.rules,
        policy=retry_policy(settings),
        dlq=dlq,
        stats=stats,
        concurrency=settings.concurrency,
        dedup=dedup,
        # In-flight deliveries finish within this after a stop; the rest of the budget
        # is for the final checkpoint and the lease release.
        stop_grace_s=max(0.5, settings.shutdown_s * 0.6),
        lane=lane,
        schedule=settings.retry_schedule,
        on_park=on_park,
    )


@dataclass
class Pipeline:
    """Everything that reads, decides, delivers and checkpoints, minus the lifecycle."""

    dynamodb: Any
    stats: Stats
    dlq: DeadLetterStore
    store: DynamoCheckpointStore
    dispatcher: Dispatcher
    processor: BatchProcessor
    source: StreamSource
    retrier: LaneRetrier | None  # run by the lease holder's runner (the lane on)


def build_pipeline(
    settings: WorkerSettings,
    clients: Clients,
    lease: Lease,
    dynamodb: Any,
    *,
    wrap: SinkWrap | None = None,
    stop: Signal | None = None,
    runs_retrier: bool = True,
) -> Pipeline:
    """`runs_retrier` False in a reader process: the parent runs the lane retrier, and a
    park here nudges it through the state table instead."""
    stats = Stats()
    dlq = DeadLetterStore(dynamodb, settings.state_table, settings.app, settings.dlq_ttl_days)
    store = DynamoCheckpointStore(dynamodb, settings.state_table, settings.app, lease, time.time)
    profiles = build_profiles(settings, dynamodb, stats) if settings.enriched_sinks() else None
    sinks = build_sinks(
        settings, clients, dynamodb=dynamodb, stats=stats, stop=stop, profiles=profiles, wrap=wrap
    )
    lane = retrier = None
    if settings.retry_schedule:
        lane = LaneStore(
            client=dynamodb,
            table=settings.state_table,
            app=settings.app,
            fence=lease,
            clock=time.time,
            dlq_ttl_days=settings.dlq_ttl_days,
        )
        retrier = LaneRetrier(
            lane=lane,
            table=settings.table,
            sinks=sinks,
            schedule=settings.retry_schedule,
            stats=stats,
            concurrency=min(8, settings.concurrency),
            lease_valid=lambda: time.time() < lease.valid_until_s,
        )
    if lane is not None and not runs_retrier:
        retrier = None
    on_park = (
        retrier.wake if retrier else (Nudger(lane=lane, clock=time.monotonic) if lane else None)
    )
    dispatcher = build_dispatcher(settings, sinks, dynamodb, stats, dlq, lane=lane, on_park=on_park)
    processor = BatchProcessor(dispatcher, dlq, stats, time.time, enrich=profiles)
    source = StreamSource(fastparse.enable(clients.streams()))
    return Pipeline(dynamodb, stats, dlq, store, dispatcher, processor, source, retrier)


def runner_config(settings: WorkerSettings) -> RunnerConfig:
    """The runner's part of the settings, so `Runner` does not depend on `WorkerSettings`."""
    return RunnerConfig(
        table=settings.table,
        stream_arn=settings.stream_arn,
        start=settings.start,
        idle_wait_s=settings.idle_wait_ms / 1000,
        discovery_interval_s=settings.discovery_interval_s,
        stats_interval_s=settings.stats_interval_s,
        shutdown_s=settings.shutdown_s,
        max_shards=settings.max_shards,
    )


def reader_launcher(settings: WorkerSettings, owner: str, parts: Pipeline) -> Launcher | None:
    """Where shards are read: this process only (None, the Runner's default), N reader
    processes, or `auto`: here, then up to one process per core once several are read."""
    cores = multiproc.usable_cores()
    if settings.processes == 1 or (settings.processes == "auto" and cores == 1):
        return None
    fixed = 0 if settings.processes == "auto" else settings.processes
    children = multiproc.ProcessLauncher(
        settings=settings,
        owner=owner,
        stats=parts.stats,
        processes=fixed,
        child_main=reader_process_main,
    )
    if fixed:
        return children
    local = ThreadLauncher(
        config=runner_config(settings),
        source=parts.source,
        store=parts.store,
        processor=parts.processor,
        stats=parts.stats,
    )
    return multiproc.AutoLauncher(local=local, processes=children, cores=cores)


def reader_process_main(settings: WorkerSettings, owner: str, index: int, conn: Connection) -> None:
    """A reader process (spawned by the parent's ProcessLauncher): its own pipeline, its
    checkpoints fenced by the parent's lease, the same thread-per-shard launcher."""
    logs.configure(settings.log_format, settings.log_level)
    stop = threading.Event()
    clients = Clients(settings.region)
    dynamodb = clients.dynamodb()
    lease = FollowerLease(
        dynamodb,
        settings.state_table,
        settings.app,
        owner,
        settings.lease_s,
        clock=time.time,
        scope=settings.table,
    )
    parts = build_pipeline(settings, clients, lease, dynamodb, stop=stop, runs_retrier=False)
    launcher = ThreadLauncher(
        config=runner_config(settings),
        source=parts.source,
        store=parts.store,
        processor=parts.processor,
        stats=parts.stats,
    )
    process = multiproc.ReaderProcess(
        settings=settings,
        owner=owner,
        index=index,
        conn=conn,
        stop=stop,
        lease=lease,
        launcher=launcher,
        stats=parts.stats,
        close=parts.dispatcher.close,
    )
    gctune.tune()
    process.run()


def build_worker(
    settings: WorkerSettings,
    clients: Clients,
    stop: threading.Event,
    *,
    wrap: SinkWrap | None = None,
) -> Worker:
    """Everything `worker run` needs; `wrap` sees each plain sink first (the demo)."""
    dynamodb = prepare_state(settings, clients)
    lease = Lease(
        dynamodb,
        settings.state_table,
        settings.app,
        owner_id(),
        settings.lease_s,
        clock=time.time,
        scope=settings.table,
    )
    parts = build_pipeline(settings, clients, lease, dynamodb, wrap=wrap, stop=stop)
    runner = Runner(
        config=runner_config(settings),
        source=parts.source,
        tables=dynamodb,
        store=parts.store,
        lease=lease,
        processor=parts.processor,
        stats=parts.stats,
        stop=stop,
        launcher=reader_launcher(settings, lease.owner, parts),
        retrier=parts.retrier,
    )
    return Worker(runner, parts.dispatcher, parts.stats, parts.dlq, lease)


def kcl_processor_main() -> int:
    """`python -m worker kcl-processor`, the process the KCL MultiLangDaemon starts per
    shard: the same batch core as the poller behind amazon-kclpy's record processor,
    the protocol on stdout, every log line on stderr."""
    # Fleet mode only: amazon-kclpy is an optional extra (`make fleet`).
    from worker.kcl import child  # noqa: PLC0415
    from worker.kcl.processor import ShardProcessor  # noqa: PLC0415
    from worker.kcl.reporting import ReportingProcessor  # noqa: PLC0415
    from worker.kcl.status import STATUS_DIR_ENV  # noqa: PLC0415

    protocol = child.claim_stdout()
    try:
        settings = WorkerSettings.from_env(os.environ)
    except WorkerError as exc:
        return exit_with(child.PROG, str(exc), exc.exit_code)
    logs.configure("json", settings.log_level, stream=sys.stderr)
    stop = threading.Event()
    child.ignore_interrupts(stop)
    child.watch_parent(stop)
    clients = Clients(settings.region)
    dynamodb = clients.dynamodb()
    stats = Stats()
    # The state table (and so the DLQ) was created by `worker kcl run` before the daemon.
    dlq = DeadLetterStore(dynamodb, settings.state_table, settings.app, settings.dlq_ttl_days)
    profiles = build_profiles(settings, dynamodb, stats) if settings.enriched_sinks() else None
    sinks = build_sinks(
        settings, clients, dynamodb=dynamodb, stats=stats, stop=stop, profiles=profiles
    )
    dispatcher = build_dispatcher(settings, sinks, dynamodb, stats, dlq)
    batch = BatchProcessor(dispatcher, dlq, stats, time.time, enrich=profiles)
    # `worker kcl run` resolved the stream and passed it on (ORDERSTREAM_STREAM_ARN): it
    # scopes the DLQ entries and holds of this processor.
    processor: Any = ShardProcessor(
        batch,
        dlq,
        stats,
        stop,
        stats_interval_s=settings.stats_interval_s,
        stream_arn=settings.stream_arn or "",
    )
    status_dir = os.environ.get(STATUS_DIR_ENV)
    if status_dir:  # `worker kcl run` reads it for /healthz, /readyz, /metrics
        processor = ReportingProcessor(inner=processor, stats=stats, folder=Path(status_dir))
    gctune.tune()
    return child.serve(processor, protocol=protocol, stats=stats, close=dispatcher.close)
