"""Worker settings: ORDERSTREAM_* variables (each also a CLI flag), validated once.

Each is declared once, on its WorkerSettings field (declaration.py): parser and bounds
(parsers.py), default, --help text, and the docs' texts that `make settings-doc`
renders (doc.py). Field metadata, not pydantic-settings: no new dependency, the
parsers' one-line errors naming the variable stay as they are, and every module keeps
taking the same frozen dataclass.
"""

from __future__ import annotations

from worker.settings.commands import COMMAND_SETTINGS
from worker.settings.declaration import (
    INTERNAL_VARIABLES,
    KCL_STATUS_DIR,
    SETTINGS,
    WorkerSettings,
)
from worker.settings.parsers import SINK_NAMES
from worker.settings.setting import Setting, display

__all__ = [
    "COMMAND_SETTINGS",
    "INTERNAL_VARIABLES",
    "KCL_STATUS_DIR",
    "SETTINGS",
    "SINK_NAMES",
    "Setting",
    "WorkerSettings",
    "display",
]
