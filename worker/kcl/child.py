"""The processor process the KCL daemon starts for each shard: `python -m worker.kcl`.

stdout is amazon-kclpy's protocol channel, so before anything can print, descriptor 1
is moved aside for the protocol and pointed at stderr: every log line, the log sink's
notifications included, is JSON on stderr. The daemon copies the child's stderr line
by line to its own stderr, where `worker kcl run` passes each line on as an event.

The daemon drives this process (stdin closes when the shard is done), so SIGINT and
SIGTERM are ignored here; if the daemon itself dies, the process exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import structlog
from amazon_kclpy.kcl import KCLProcess

from worker import wiring as app
from worker.aws import Clients
from worker.batch.processor import BatchProcessor
from worker.core.errors import WorkerError
from worker.core.stats import Stats
from worker.kcl.processor import ShardProcessor
from worker.kcl.reporting import ReportingProcessor
from worker.kcl.status import STATUS_DIR_ENV
from worker.ops import gctune
from worker.settings import WorkerSettings
from worker.state.dlq import DeadLetterStore
from writer import logs
from writer.argparsing import exit_with

log = structlog.get_logger()
PROG = "worker kcl processor"
ORPHAN_CHECK_S = 0.5


def claim_stdout() -> TextIO:
    """The protocol's own handle on the real stdout; fd 1 and sys.stdout become stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return open(protocol_fd, "w", encoding="utf-8", buffering=1)


def watch_parent(stop: threading.Event, interval_s: float = ORPHAN_CHECK_S) -> threading.Thread:
    """Exit when the daemon dies: nothing could be checkpointed any more."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                stop.set()
                with contextlib.suppress(OSError):  # stderr may have gone with the daemon
                    log.error("kcl.processor.orphaned", parent_pid=parent)
                os._exit(1)

    thread = threading.Thread(target=watch, name="orphan-watch", daemon=True)
    thread.start()
    return thread


def main() -> int:
    """The MultiLangDaemon's child process: speaks the KCL protocol on stdout, logs on
    stderr, and delivers each shard's records through the same core as the poller."""
    protocol = claim_stdout()
    try:
        settings = WorkerSettings.from_env(os.environ)
    except WorkerError as exc:
        return exit_with(PROG, str(exc), exc.exit_code)
    logs.configure("json", settings.log_level, stream=sys.stderr)
    stop = threading.Event()
    # The daemon drives shutdowns (shutdownRequested, leaseLost); Ctrl-C reaches the
    # whole process group, so SIGINT is left to the daemon. A SIGTERM (a container
    # stop reaches every process) stops delivering at once and cuts retry waits short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    watch_parent(stop)
    clients = Clients(settings.region)
    dynamodb = clients.dynamodb()
    stats = Stats()
    # The state table (and so the DLQ) was created by `worker kcl run` before the daemon.
    dlq = DeadLetterStore(dynamodb, settings.state_table, settings.app, settings.dlq_ttl_days)
    profiles = app.build_profiles(settings, dynamodb, stats) if settings.enriched_sinks() else None
    sinks = app.build_sinks(
        settings, clients, dynamodb=dynamodb, stats=stats, stop=stop, profiles=profiles
    )
    dispatcher = app.build_dispatcher(settings, sinks, dynamodb, stats, dlq)
    batch = BatchProcessor(dispatcher, dlq, stats, time.time, enrich=profiles)
    # `worker kcl run` resolved the stream and passed it on (ORDERSTREAM_STREAM_ARN): it
    # scopes the DLQ entries and holds of this processor.
    stream_arn = settings.stream_arn or ""
    processor = ShardProcessor(
        batch, dlq, stats, stop, stats_interval_s=settings.stats_interval_s, stream_arn=stream_arn
    )
    status_dir = os.environ.get(STATUS_DIR_ENV)
    if status_dir:  # `worker kcl run` reads it for /healthz, /readyz, /metrics
        processor = ReportingProcessor(inner=processor, stats=stats, folder=Path(status_dir))
    log.info("kcl.processor.started", pid=os.getpid())
    gctune.tune()
    try:
        KCLProcess(processor, input_file=sys.stdin, output_file=protocol).run()
    finally:
        dispatcher.close()
        log.info("kcl.processor.stopped", **stats.totals())
    return 0
