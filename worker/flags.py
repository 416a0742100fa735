"""The worker's CLI flags: one per setting a command reads, with its metavar and default.

Every setting is also an environment variable; a flag wins over it. `--help` of each
command lists only the settings that command reads (fleet tuning only under `worker kcl
run`), each with the variable and the default, so the help is the settings table.
"""

from __future__ import annotations

import argparse

from worker.settings import COMMAND_SETTINGS, SETTINGS, WorkerSettings, display

METAVARS = {
    "table": "NAME",
    "app": "NAME",
    "state_table": "NAME",
    "stream_arn": "ARN",
    "start": "TRIM_HORIZON|LATEST",
    "sinks": "LIST",
    "webhook_url": "URL",
    "webhook_secret": "whsec_...[,...]",
    "sns_topic_arn": "ARN",
    "sqs_queue_url": "URL",
    "log_format": "auto|json|console",
    "log_level": "LEVEL",
    "http_port": "PORT",
    "notify_on": "RULES",
    "routes": "ROUTES",
    "retry_schedule": "WAITS|off",
    "kcl_metrics": "NONE|SUMMARY|DETAILED",
    "kcl_jars": "DIR",
    "webhook_rate": "PER_SECOND",
    "breaker_ratio": "RATIO",
}
# Defaults that are not a value of their own.
DEFAULT_TEXT = {
    "stream_arn": "the table's latest stream",
    "webhook_url": "none",
    "webhook_secret": "none (unsigned)",
    "sns_topic_arn": "none",
    "sqs_queue_url": "none",
    "notify_on": "*>*",
    "routes": "every change to every sink",
    "kcl_assignment_ms": "2 x failover",
    "kcl_max_leases": "no limit",
    "kcl_jars": "kcl/target/lib",
    "webhook_rate": "0 (no limit)",
}


def metavar(name: str) -> str:
    if name in METAVARS:
        return METAVARS[name]
    if isinstance(getattr(WorkerSettings(), name), bool):
        return "on|off"
    for suffix, unit in (("_ms", "MS"), ("_s", "SECONDS")):
        if name.endswith(suffix):
            return unit
    return "N"


def default_text(name: str) -> str:
    value = getattr(WorkerSettings(), name)
    return DEFAULT_TEXT.get(name) or display(value)


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of `command` (a key of COMMAND_SETTINGS); unset ones fall back to the
    environment, so their argparse default stays None."""
    wanted = set(COMMAND_SETTINGS[command])
    group = parser.add_argument_group("settings (each also an environment variable)")
    for setting in SETTINGS:
        if setting.name not in wanted:
            continue
        group.add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            metavar=metavar(setting.name),
            help=f"{setting.help} ({setting.env}; default: {default_text(setting.name)})",
        )
