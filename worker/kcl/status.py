"""The fleet's status channel: each KCL processor writes a small file, `worker kcl run`
reads them all.

Why files: the daemon runs one Python process per shard lease, while only `worker kcl
run` can own ORDERSTREAM_HTTP_PORT. A folder of per-process JSON files, each replaced
atomically (write, then rename), needs no server in the processors, keeps a crashed
processor's last counts (so totals stay monotonic), and costs one small write per
second per shard. The folder is the launcher's own temporary folder, passed down
through the daemon's environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from worker.settings import KCL_STATUS_DIR

STATUS_DIR_ENV = KCL_STATUS_DIR  # internal: set by `worker kcl run`


@dataclass(frozen=True)
class ProcessorStatus:
    """What one processor process last said about itself."""

    pid: int
    shard_id: str | None = None  # None until KCL names the shard
    holds_lease: bool = False  # initialized and not since told the lease is gone
    fetched_at: float | None = None  # epoch seconds of KCL's last processRecords call
    lag_ms: int | None = None  # KCL's millisBehindLatest at that call
    counts: dict[str, int] = field(default_factory=dict)


def write(folder: Path, status: ProcessorStatus) -> None:
    """Replace this process's file; a reader never sees half of one."""
    target = folder / f"{status.pid}.json"
    partial = folder / f".{status.pid}.json.tmp"
    partial.write_text(json.dumps(asdict(status)), encoding="utf-8")
    os.replace(partial, target)


def read_all(folder: Path) -> list[ProcessorStatus]:
    """Every processor's last status; files that vanish or do not parse are skipped."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found.append(ProcessorStatus(**data))
        except (OSError, ValueError, TypeError):
            continue
    return found
