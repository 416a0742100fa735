"""The daemon's output as events, pure: its logback lines and its children's JSON lines.

The daemon logs through logback with the pattern below (one line per event, fields
tab-separated, newlines and tabs in the message folded), and copies each stderr line
of a processor child verbatim to its own stderr; KCL's own "Received error line from
subprocess" ERROR copy of those lines is switched off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

MARKER = "@kcl"
_FOLD = r"%replace(%msg){'[\r\n\t]+', ' '}"
_FOLD_EXC = r"%replace(%xEx){'[\r\n\t]+', ' '}"
# marker, level, logger, thread, exception, message
PATTERN = f"{MARKER}\t%level\t%logger\t%thread\t{_FOLD_EXC}\t{_FOLD}%nopex%n"
_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning", "ERROR": "error"}
_LOGBACK_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR"}
# At `info`, these repeat every lease-assignment interval (or dump every property at
# start) without telling an operator anything new: capped at WARN. `debug` shows all.
QUIET_LOGGERS = (
    "software.amazon.kinesis.coordinator.assignment.LeaseAssignmentManager",
    "software.amazon.kinesis.coordinator.assignment.VarianceBasedLeaseAssignmentDecider",
    "software.amazon.kinesis.leases.dynamodb.DynamoDBLeaseDiscoverer",
    "software.amazon.kinesis.leader.DynamoDBLockBasedLeaderDecider",
    "software.amazon.kinesis.coordinator.DiagnosticEventLogger",
    "software.amazon.kinesis.multilang.config.KinesisClientLibConfigurator",
    "software.amazon.kinesis.multilang.MultiLangProtocol",
)
# The adapter warns at every start about settings it adjusts itself.
ADAPTER_FACTORY = "com.amazonaws.services.dynamodbv2.streamsadapter.StreamsSchedulerFactory"
# KCL logs ~130 INFO lines from start to the first record and a few per shard message
# (the multilang protocol's own bookkeeping). These are the ones an operator acts on or
# would look for: tables made, the worker loop up, a lease taken or lost, the stop.
# Every other INFO line is passed on at debug (ORDERSTREAM_LOG_LEVEL=debug shows it).
MATTERS: tuple[tuple[str, str], ...] = (
    ("Scheduler", "Initialization complete"),
    ("Scheduler", "Worker shutdown requested"),
    ("Scheduler", "Lease failover time is reached"),
    ("DynamoDBLeaseCoordinator", "Created new lease table"),
    ("CoordinatorStateDAO", "DDB Table"),
    ("WorkerMetricStatsDAO", "Table"),
    ("DynamoDBLeaseRefresher", "Assigned lease"),
    ("DynamoDBLeaseRenewer", ""),  # a lease lost or given up
    ("DynamoDBLeaseTaker", ""),  # a lease taken or stolen (KCL 2.x assignment)
    ("MultiLangShardRecordProcessor", "Child process exited"),
    ("StreamsMultiLangDaemon", ""),  # our shim: start, stop, failure
)


@dataclass(frozen=True)
class Line:
    """One output line: a child's own JSON event (`passthrough`) or a daemon event."""

    level: str  # debug, info, warning, error
    passthrough: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def logback_xml(level: str) -> str:
    """A logback configuration for the daemon at the worker's log level."""
    pattern = escape(PATTERN).replace("\t", "&#9;")
    root = _LOGBACK_LEVELS.get(level, "INFO")
    caps = {name: "WARN" for name in QUIET_LOGGERS} if root == "INFO" else {}
    if root in ("INFO", "WARN"):
        caps[ADAPTER_FACTORY] = "ERROR"
    quiet = "\n".join(f'  <logger name="{name}" level="{cap}"/>' for name, cap in caps.items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `worker kcl run`: one parseable line per event on stdout. -->
<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>{pattern}</pattern></encoder>
  </appender>
  <!-- The daemon already copies each child stderr line to its stderr verbatim. -->
  <logger name="software.amazon.kinesis.multilang.DrainChildSTDERRTask" level="OFF"/>
{quiet}
  <root level="{root}"><appender-ref ref="OUT"/></root>
</configuration>
"""


def parse(line: str, stream: str) -> Line | None:
    """Classify one line of the daemon's `stream` (stdout or stderr); None if blank."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if text.startswith(MARKER + "\t"):
        return _logback(text)
    if text.startswith("{"):
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            level = str(event.get("level", "info")).lower()
            return Line(level if level in _LOGBACK_LEVELS else "info", passthrough=event)
    # JVM messages, a child's non-JSON output (a traceback), anything else.
    return Line(
        "warning" if stream == "stderr" else "info", fields={"stream": stream, "message": text}
    )


def _logback(text: str) -> Line:
    parts = text.split("\t", 5)
    if len(parts) < 6:
        return Line("info", fields={"stream": "stdout", "message": text})
    _, level, logger, thread, error, message = parts
    fields: dict[str, Any] = {"logger": logger, "thread": thread, "message": message.strip()}
    if error.strip():
        fields["error"] = error.strip()
    ours = _LEVELS.get(level.strip(), "info")
    if ours == "info" and not matters(logger, fields["message"]):
        ours = "debug"
    return Line(ours, fields=fields)


def matters(logger: str, message: str) -> bool:
    """Whether a KCL INFO line stays at info (MATTERS); the rest go to debug."""
    name = logger.rsplit(".", 1)[-1]
    return any(name == who and message.startswith(start) for who, start in MATTERS)
