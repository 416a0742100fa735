"""The `worker` command line: run, demo, status, dlq, sink (the process edge: env, signals)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import structlog

from worker import wiring as app
from worker.aws import Clients
from worker.core.errors import WorkerError
from worker.flags import add_flags
from worker.kcl import DESCRIPTION as KCL_DESCRIPTION
from worker.ops import gctune, startup
from worker.ops.health import HealthServer
from worker.settings import SETTINGS, WorkerSettings
from writer import logs
from writer.argparsing import (
    OneLineArgumentParser,
    UsageError,
    exit_with,
    quiet_after_closed_stdout,
)

log = structlog.get_logger()
RUN_DESCRIPTION = """\
The poller: one active process reads every shard of the table's stream and delivers a
notification per order status change; a second replica waits as a hot standby.
Every setting is an environment variable and a flag (the flag wins)."""


def build_parser() -> OneLineArgumentParser:
    """Every command, each with the flags of only the settings it reads (flags.py)."""
    parser = OneLineArgumentParser(prog="worker", description="orderstream worker")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    run = sub.add_parser(
        "run", help="the long-running stream consumer", description=RUN_DESCRIPTION
    )
    add_flags(run, "run")
    demo = sub.add_parser("demo", help="embedded end-to-end demo (no AWS account)")
    add_flags(demo, "demo")
    status = sub.add_parser(
        "status", help="per shard: checkpoint, lag, owner; per sink: breaker, parked changes"
    )
    status.add_argument("--json", action="store_true", help="JSON lines even on a TTY")
    add_flags(status, "status")
    dlq = sub.add_parser("dlq", help="the dead-letter store")
    dlq_sub = dlq.add_subparsers(
        dest="dlq_command", required=True, parser_class=OneLineArgumentParser
    )
    dlq_list = dlq_sub.add_parser("list", help="list dead letters")
    dlq_list.add_argument("--json", action="store_true", help="JSON lines even on a TTY")
    add_flags(dlq_list, "dlq list")
    redrive = dlq_sub.add_parser("redrive", help="send dead letters again")
    target = redrive.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", dest="entry_id", help="one entry")
    target.add_argument("--order", dest="order_id", help="every entry of one order")
    target.add_argument("--all", action="store_true", help="every entry")
    add_flags(redrive, "dlq redrive")
    drop = dlq_sub.add_parser(
        "drop", help="delete one dead letter without sending it (releases its order's hold)"
    )
    drop.add_argument("--id", dest="entry_id", required=True, help="the entry")
    add_flags(drop, "dlq drop")
    lane = sub.add_parser("lane", help="the retry lane: changes parked for a sink")
    lane_sub = lane.add_subparsers(
        dest="lane_command", required=True, parser_class=OneLineArgumentParser
    )
    lane_list = lane_sub.add_parser("list", help="list parked changes, oldest first per order")
    lane_list.add_argument("--order", dest="order_id", help="only this order's changes")
    lane_list.add_argument("--json", action="store_true", help="JSON lines even on a TTY")
    add_flags(lane_list, "lane list")
    lane_retry = lane_sub.add_parser(
        "retry", help="make parked changes due now (the running worker sends them, in order)"
    )
    which = lane_retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", dest="order_id", help="every parked change of one order")
    which.add_argument("--all", action="store_true", help="every parked change")
    add_flags(lane_retry, "lane retry")
    _add_sink_commands(sub)
    kcl = sub.add_parser("kcl", help="fleet mode on the KCL MultiLangDaemon (Java)")
    kcl_sub = kcl.add_subparsers(
        dest="kcl_command", required=True, parser_class=OneLineArgumentParser
    )
    kcl_run = kcl_sub.add_parser(
        "run",
        help="run this worker as one member of a KCL fleet",
        description=KCL_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(kcl_run, "kcl run")
    return parser


def _add_sink_commands(sub: Any) -> None:
    sink = sub.add_parser("sink", help="endpoint health: disabled sinks and circuit breakers")
    sink_sub = sink.add_subparsers(
        dest="sink_command", required=True, parser_class=OneLineArgumentParser
    )
    sink_list = sink_sub.add_parser(
        "list", help="per remote sink: disabled (and why, since when), breaker state"
    )
    sink_list.add_argument("--json", action="store_true", help="JSON lines even on a TTY")
    add_flags(sink_list, "sink list")
    enable = sink_sub.add_parser(
        "enable",
        help="enable a sink disabled by 410 Gone (a running worker picks it up in seconds)",
    )
    enable.add_argument("name", metavar="NAME", help="the sink: webhook, sns or sqs")
    add_flags(enable, "sink enable")


def _overrides(args: argparse.Namespace) -> dict[str, str | None]:
    return {s.name: getattr(args, s.name, None) for s in SETTINGS}


def _install_signal_handlers(on_stop: Callable[[], None], within_s: float) -> None:
    """SIGTERM and SIGINT stop the worker; `worker.stopping` is logged for the first
    only, with the stop's bound (a second Ctrl-C while it stops changes nothing)."""
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        on_stop()
        if not received:
            logs.log_from_signal_handler(
                log.info, "worker.stopping", signal=signal.Signals(signum).name, within_s=within_s
            )
        received.append(signum)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def command_run(settings: WorkerSettings) -> int:
    """`worker run`: the poller until SIGTERM/SIGINT or a closed stdout; 0 after a clean stop."""
    stop = threading.Event()
    stopping: list[Callable[[], None]] = [stop.set]

    def on_stop() -> None:
        for action in stopping:
            action()

    _install_signal_handlers(on_stop, settings.shutdown_s)
    worker = app.build_worker(settings, Clients(settings.region), stop)
    # From now on a stop also ends the current term at once (no attempt starts after),
    # before the process-wide stop the sinks see.
    stopping.insert(0, worker.runner.request_stop)
    if logs.guard:  # stdout closed (`worker run | head`): stop as for SIGTERM
        logs.guard[0].on_closed.append(on_stop)
    try:
        health = None
        if settings.http_port:  # a busy port is a ConfigError naming ORDERSTREAM_HTTP_PORT
            health = HealthServer(
                settings.http_port,
                worker.stats,
                worker.runner.ready,
                settings.http_host,
            )
            health.start()
        log.info("worker.started", owner=worker.lease.owner, **settings.safe_summary("run"))
        startup.report_rules(settings)
        startup.report_idle_targets(settings, os.environ)
        if "email" in settings.sinks:  # in the background: SES never delays the start
            ses = Clients(settings.region).sesv2()
            threading.Thread(
                target=startup.report_email_sender,
                args=(settings, ses),
                name="sender-check",
                daemon=True,
            ).start()
        gctune.tune()
        try:
            worker.runner.run()
        finally:
            if health:
                health.stop()
    finally:
        worker.dispatcher.close()
    if logs.output_closed():
        return exit_with("worker", "stdout was closed: stopped (nothing more can be logged)", 1)
    log.info("worker.stopped", **worker.stats.totals())
    return 0


def dispatch(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """Run the parsed command; admin, demo and kcl load only when asked (a lean `worker run`)."""
    from worker import admin, demo  # noqa: PLC0415 - keep `worker run` start-up lean

    if args.command == "run":
        return command_run(settings)
    if args.command == "demo":
        return demo.run_demo(settings)
    if args.command == "kcl":
        from worker.kcl import launcher  # noqa: PLC0415 - fleet mode only

        return launcher.run(
            settings,
            os.environ,
            _overrides(args),
            prepare_state=lambda: app.prepare_state(settings, Clients(settings.region)),
            worker_id=app.owner_id(),
        )
    if args.command == "status":
        return admin.status(settings, as_json=args.json or not sys.stdout.isatty())
    return dispatch_admin(args, settings)


def dispatch_admin(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """The operator commands with sub-commands: `lane`, `sink`, `dlq`."""
    from worker import admin  # noqa: PLC0415 - keep `worker run` start-up lean

    as_json = bool(getattr(args, "json", False)) or not sys.stdout.isatty()
    if args.command == "lane":
        if args.lane_command == "list":
            return admin.lane_list(settings, args.order_id, as_json=as_json)
        return admin.lane_retry(settings, args.order_id)
    if args.command == "sink":
        if args.sink_command == "list":
            return admin.sink_list(settings, as_json=as_json)
        return admin.sink_enable(settings, args.name)
    return dispatch_dlq(args, settings)


def dispatch_dlq(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """`dlq list`, `dlq drop`, or `dlq redrive` by id, order or all."""
    from worker import admin  # noqa: PLC0415 - keep `worker run` start-up lean

    if args.dlq_command == "list":
        return admin.dlq_list(settings, as_json=args.json or not sys.stdout.isatty())
    if args.dlq_command == "drop":
        return admin.dlq_drop(settings, args.entry_id)
    return admin.dlq_redrive(settings, args.entry_id, args.order_id, args.all)


# Operator commands print their answer on stdout (`worker dlq list | jq`): their log
# goes to stderr. The long-running ones (run, kcl run, demo) log on stdout, for the
# container's log collector.
LOGS_ON_STDERR = frozenset({"status", "dlq", "sink", "lane"})


def fail(exc: WorkerError, command: str, log_format: str) -> int:
    """The one stderr line, plus the `worker.error` event for a JSON log on stdout. On a
    console (a TTY), or when the log is on stderr already, the line alone says it once."""
    if not logs.is_console(log_format) and command not in LOGS_ON_STDERR:
        log.error("worker.error", error=str(exc), command=command)
    return exit_with("worker", str(exc), exc.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """The `worker` entry point: a usage error exits 2, a WorkerError is one line and its code."""
    try:
        args = build_parser().parse_args(argv)
        settings = WorkerSettings.from_env(os.environ, _overrides(args))
    except UsageError as exc:
        return exit_with("worker", str(exc).removeprefix("worker: "), 2)
    except WorkerError as exc:
        # Settings are not valid, so log with the defaults: ops still see the event.
        logs.configure()
        return fail(exc, args.command, "auto")
    level = settings.log_level
    if args.command == "demo" and not (args.log_level or os.environ.get("ORDERSTREAM_LOG_LEVEL")):
        level = "warning"  # the demo prints notifications and a summary, not the log
    logs.configure(
        settings.log_format, level, stream=sys.stderr if args.command in LOGS_ON_STDERR else None
    )
    startup.report_unknown_variables(os.environ)
    try:
        return dispatch(args, settings)
    except WorkerError as exc:
        return fail(exc, args.command, settings.log_format)
    except KeyboardInterrupt:  # `worker run` handles SIGINT itself; the other commands
        return exit_with("worker", "interrupted (Ctrl-C)", 130)
    except BrokenPipeError:  # `worker status | head`: the reader had what it wanted
        return quiet_after_closed_stdout()
