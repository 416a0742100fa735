"""The worker's CLI flags: one per setting a command reads, with its metavar and default.

Every setting is also an environment variable; a flag wins over it. `--help` of each
command lists only the settings that command reads (fleet tuning only under `worker kcl
run`), each with the variable and the default, so the help is the settings table. Flag,
metavar, help and default are all read from the declaration (worker/settings/).
"""

from __future__ import annotations

import argparse

from worker.settings import COMMAND_SETTINGS, SETTINGS, Setting


def metavar(setting: Setting) -> str:
    """The declared metavar, else one from the type or the unit: `on|off`, `MS`, `N`."""
    if setting.metavar:
        return setting.metavar
    if isinstance(setting.default, bool):
        return "on|off"
    for suffix, unit in (("_ms", "MS"), ("_s", "SECONDS")):
        if setting.name.endswith(suffix):
            return unit
    return "N"


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
            metavar=metavar(setting),
            help=f"{setting.help} ({setting.env}; default: {setting.default_plain()})",
        )
