"""`worker kcl run`: the KCL MultiLangDaemon (Java) with our processor, as one process.

The launcher checks what fleet mode needs (Java, the shim's jars, amazon-kclpy), creates
the state table, finds the stream, writes the daemon's properties and logback files and
a tiny executable that starts `python -m worker kcl-processor`, then runs the daemon:
- its output lines become this process' JSON events (see daemonlog.py);
- SIGTERM/SIGINT are forwarded as SIGTERM, so KCL asks each processor to checkpoint
  and hands the leases over; a second signal, or ORDERSTREAM_SHUTDOWN_S passing,
  kills it;
- it runs in its own session (a terminal's Ctrl-C reaches only us) and, on Linux, is
  killed by the kernel if this process dies, so a kill -9 here never leaves a daemon
  holding leases behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.core.errors import SetupError
from worker.core.stats import Stats
from worker.kcl import daemonlog, properties
from worker.kcl.leases import read_leases
from worker.kcl.monitor import FleetMonitor
from worker.kcl.status import STATUS_DIR_ENV
from worker.ops import startup
from worker.ops.health import HealthServer
from worker.poller.stream import latest_stream_arn
from worker.settings import SETTINGS, WorkerSettings
from writer.awsenv import NO_REGION
from writer.logs import log_from_signal_handler

log = structlog.get_logger()

MAIN_CLASS = "orderstream.kcl.StreamsMultiLangDaemon"
SHIM_JAR = "orderstream-kcl-*.jar"
REPO_JARS = Path(__file__).resolve().parents[2] / "kcl" / "target" / "lib"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How the JVM ends after the SIGTERM we send it: its shutdown hooks ran, then it exits
# 128 + 15 (or Popen reports the signal itself). Both mean a graceful stop.
STOPPED_BY_SIGTERM = frozenset({0, 128 + signal.SIGTERM, -signal.SIGTERM})
_PR_SET_PDEATHSIG = 1
_prctl: Any = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


@dataclass(frozen=True)
class Runtime:
    """What fleet mode runs on: the `java` executable and the folder of the shim's jars."""

    java: str
    jars: Path


def find_runtime(settings: WorkerSettings, env: Mapping[str, str]) -> Runtime:
    """Java, the jars and amazon-kclpy, or a SetupError (exit 2) naming what is missing."""
    java = _find_java(env)
    jars = Path(settings.kcl_jars) if settings.kcl_jars else REPO_JARS
    if not any(jars.glob(SHIM_JAR)):
        hint = "check ORDERSTREAM_KCL_JARS" if settings.kcl_jars else "run `make fleet`"
        raise SetupError(f"KCL jars not found: no {SHIM_JAR} in {jars} ({hint}; it needs mvn)")
    if importlib.util.find_spec("amazon_kclpy") is None:
        raise SetupError(
            "amazon_kclpy is not installed in this Python (run `make fleet`, which uses "
            "kcl/install-kclpy.sh)"
        )
    return Runtime(java, jars)


def _find_java(env: Mapping[str, str]) -> str:
    home = env.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java", path=env.get("PATH"))
    if not found:
        raise SetupError("java not found: fleet mode needs Java 8+ on PATH (or JAVA_HOME)")
    return found


def child_env(env: Mapping[str, str], overrides: Mapping[str, str | None]) -> dict[str, str]:
    """The daemon's (and so each processor's) environment: CLI flags become variables."""
    merged = dict(env)
    for setting in SETTINGS:
        value = overrides.get(setting.name)
        if value is not None:
            merged[setting.env] = value
    return merged


def write_files(
    folder: Path, settings: WorkerSettings, env: Mapping[str, str], stream_arn: str, worker_id: str
) -> tuple[Path, Path]:
    """The processor executable, kcl.properties and logback.xml; returns the last two."""
    if any(ch.isspace() for ch in str(folder)):
        raise SetupError(f"{folder}: KCL splits executableName at spaces; set TMPDIR")
    executable = folder / "processor"
    executable.write_text(
        "#!/bin/sh\n"
        "# Written by `worker kcl run`: the KCL daemon starts this once per shard lease.\n"
        f"exec {shlex.quote(sys.executable)} -m worker kcl-processor\n"
    )
    executable.chmod(0o700)
    credentials = (
        "EnvironmentVariableCredentialsProvider"
        if env.get("AWS_ACCESS_KEY_ID")
        else "DefaultCredentialsProvider"
    )
    props = folder / "kcl.properties"
    props.write_text(
        properties.build(
            settings,
            stream_arn=stream_arn,
            worker_id=worker_id,
            executable=str(executable),
            endpoints=properties.Endpoints.from_env(env),
            credentials=credentials,
            python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        )
    )
    logback = folder / "logback.xml"
    logback.write_text(daemonlog.logback_xml(settings.log_level))
    return props, logback


def run(
    settings: WorkerSettings,
    env: Mapping[str, str],
    overrides: Mapping[str, str | None],
    *,
    prepare_state: Callable[[], Any],
    worker_id: str,
) -> int:
    """`worker kcl run` after settings and logging are set up. `prepare_state` (from the
    composition root) creates the state table if needed and returns a DynamoDB client:
    called once Java and the region are known to be there."""
    runtime = find_runtime(settings, env)
    if not settings.region:
        raise SetupError(NO_REGION)
    dynamodb = prepare_state()
    stream_arn = settings.stream_arn or latest_stream_arn(dynamodb, settings.table)
    with tempfile.TemporaryDirectory(prefix="orderstream-kcl-") as tmp:
        props, logback = write_files(Path(tmp), settings, env, stream_arn, worker_id)
        status_dir = Path(tmp) / "status"
        status_dir.mkdir()
        argv = [
            runtime.java,
            f"-Dlogback.configurationFile={logback}",
            "-cp",
            f"{runtime.jars}/*",
            MAIN_CLASS,
            str(props),
        ]
        with serving(settings, status_dir):
            log.info(
                "kcl.started",
                worker_id=worker_id,
                stream_arn=stream_arn,
                properties=str(props),
                **settings.safe_summary("kcl run"),
            )
            startup.report_rules(settings)
            startup.report_idle_targets(settings, env)
            explain_wait(dynamodb, settings, worker_id)
            daemon_env = {
                **child_env(env, overrides),
                STATUS_DIR_ENV: str(status_dir),
                # The processors scope their DLQ entries and holds by the stream.
                "ORDERSTREAM_STREAM_ARN": stream_arn,
            }
            return Daemon(argv, daemon_env, settings).run()


@contextlib.contextmanager
def serving(settings: WorkerSettings, status_dir: Path) -> Iterator[None]:
    """The processors' status gathered every second, and the HTTP endpoints on it.

    The port is bound before the daemon starts, so a busy one is exit 2 at once.
    """
    stats, ready, stop = Stats(), threading.Event(), threading.Event()
    health = (
        HealthServer(settings.http_port, stats, ready, settings.http_host)
        if settings.http_port
        else None
    )
    monitor = FleetMonitor(folder=status_dir, stats=stats, ready=ready, stop=stop)
    monitor.start()
    if health:
        health.start()
    try:
        yield
    finally:
        stop.set()
        monitor.join()
        if health:
            health.stop()


def explain_wait(dynamodb: Any, settings: WorkerSettings, worker_id: str) -> None:
    """Say whose leases KCL must wait for (a restart finds its previous run's), and why."""
    try:
        leases = read_leases(dynamodb, settings.app) or []
    except (ClientError, BotoCoreError):
        return  # only an explanation: KCL itself will report real trouble
    owners = sorted({lease.owner for lease in leases if lease.owner and lease.owner != worker_id})
    if owners:
        log.info(
            "kcl.waiting",
            leases=len(leases),
            owners=owners,
            failover_ms=settings.kcl_failover_ms,
            assignment_ms=settings.kcl_assignment_ms or 2 * settings.kcl_failover_ms,
        )


class Daemon:
    """The Java process: started, its output pumped, signals forwarded, waited for."""

    def __init__(self, argv: list[str], env: dict[str, str], settings: WorkerSettings) -> None:
        self._argv = argv
        self._env = env
        self._shutdown_s = settings.shutdown_s
        self._emit = Emitter(settings.log_format)
        self._process: subprocess.Popen[str] | None = None
        self._stop_requested: float | None = None
        self._killed = False

    def run(self) -> int:
        """The daemon, start to exit, with our stop signals forwarded meanwhile; our exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        process = subprocess.Popen(
            self._argv,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads yet; it only calls prctl
        )
        self._process = process
        log.info("kcl.daemon.started", pid=process.pid)
        pumps = [
            threading.Thread(target=self._pump, args=(process.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(process.stderr, "stderr"), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        if self._stop_requested is not None:  # a signal came while it was starting
            process.send_signal(signal.SIGTERM)
        code = self._wait(process)
        for pump in pumps:
            pump.join(timeout=5)
        return self._exit_code(code)

    def _wait(self, process: subprocess.Popen[str]) -> int:
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                stopping = self._stop_requested
                if stopping and time.monotonic() - stopping > self._shutdown_s and not self._killed:
                    log.warning("kcl.daemon.killed", reason="ORDERSTREAM_SHUTDOWN_S passed")
                    self._kill()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        process = self._process
        if process is not None and process.poll() is not None:
            return
        if self._stop_requested is None:
            self._stop_requested = time.monotonic()
            log_from_signal_handler(log.info, "worker.stopping", signal=signal.Signals(signum).name)
            if process is not None:
                process.send_signal(signal.SIGTERM)  # the daemon's graceful shutdown hook
        elif not self._killed:
            log_from_signal_handler(log.warning, "kcl.daemon.killed", reason="second signal")
            self._kill()

    def _kill(self) -> None:
        self._killed = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def _exit_code(self, code: int) -> int:
        """Our exit code: 0 after a graceful stop, 1 otherwise (see docs/worker.md, exit codes)."""
        if self._stop_requested is not None:
            if not self._killed and code in STOPPED_BY_SIGTERM:
                log.info("kcl.stopped", graceful=True, exit_code=0)
                return 0
            log.warning("kcl.stopped", graceful=False, exit_code=1, daemon_exit_code=code)
            return 1
        log.error("kcl.daemon.exited", daemon_exit_code=code, exit_code=0 if code == 0 else 1)
        return 0 if code == 0 else 1

    def _pump(self, stream: IO[str] | None, name: str) -> None:
        if stream is None:
            return
        with stream:
            for text in stream:
                line = daemonlog.parse(text, name)
                if line is not None:
                    self._emit(line, text)


class Emitter:
    """Writes daemon lines as events: children's JSON lines as they are, the rest as
    `kcl.daemon` events. Both go through structlog's output, so lines never interleave."""

    def __init__(self, log_format: str) -> None:
        self._json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
        unfiltered = structlog.make_filtering_bound_logger(logging.NOTSET)
        # A child's line is already filtered and rendered by the child (notifications of
        # the log sink are never filtered): pass the text through unchanged.
        self._raw = structlog.wrap_logger(None, processors=[_text], wrapper_class=unfiltered)
        self._render = structlog.wrap_logger(None, wrapper_class=unfiltered)

    def __call__(self, line: daemonlog.Line, text: str) -> None:
        """One daemon line out: a child's JSON as written (or re-rendered on a console), the
        rest as a `kcl.daemon` event at the line's level."""
        level = logging.getLevelNamesMapping()[line.level.upper()]
        if line.passthrough is None:
            log.log(level, "kcl.daemon", **line.fields)
        elif self._json:
            self._raw.info(text.strip())
        else:
            fields = {k: v for k, v in line.passthrough.items() if k not in ("level", "timestamp")}
            self._render.log(level, fields.pop("event"), **fields)


def _text(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> str:
    return str(event_dict["event"])


def _die_with_parent() -> None:
    """In the forked child: SIGKILL when the launcher dies (Linux), e.g. after kill -9."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
