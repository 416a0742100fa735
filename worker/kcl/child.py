"""The processor process the KCL daemon starts for each shard (`python -m worker
kcl-processor`, built by `worker.wiring.kcl_processor_main`): its process plumbing.

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
from collections.abc import Callable
from typing import TextIO

import structlog
from amazon_kclpy.kcl import KCLProcess
from amazon_kclpy.v3.processor import RecordProcessorBase

from worker.core.stats import Stats

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


def ignore_interrupts(stop: threading.Event) -> None:
    """The daemon drives shutdowns (shutdownRequested, leaseLost); Ctrl-C reaches the
    whole process group, so SIGINT is left to the daemon. A SIGTERM (a container stop
    reaches every process) stops delivering at once and cuts retry waits short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())


def serve(
    processor: RecordProcessorBase,
    *,
    protocol: TextIO,
    stats: Stats,
    close: Callable[[], None],
) -> int:
    """Speak the KCL protocol until the daemon closes stdin; flush the sinks after."""
    log.info("kcl.processor.started", pid=os.getpid())
    try:
        KCLProcess(processor, input_file=sys.stdin, output_file=protocol).run()
    finally:
        close()
        log.info("kcl.processor.stopped", **stats.totals())
    return 0
