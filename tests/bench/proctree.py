"""CPU time and peak RSS of a process and its descendants, read from /proc (Linux).

The worker's reader processes (ORDERSTREAM_PROCESSES) are its children, so the
worker's cost is the sum over its process tree. `resource.getrusage(RUSAGE_CHILDREN)`
gives that only after every process was waited for, start-up included; sampling /proc
while it runs lets the bench take the CPU spent between two moments (the first and the
last notification) and so leave out imports and set-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def available() -> bool:
    return (_PROC / "self" / "stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rfind(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every live descendant."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue += _children(current)
    return pids


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (its own threads; not its children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process has had."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class TreeSampler:
    """Tracks a process tree's CPU; a process's last reading is kept after it exits,
    so the sum never drops when a reader process ends before the sample at the end."""

    root: int
    cpu: dict[int, float] = field(default_factory=dict)
    peak_mb: dict[int, float] = field(default_factory=dict)

    def sample(self) -> float:
        """Sum of the CPU seconds of every process of the tree seen so far."""
        for pid in tree(self.root):
            seconds = cpu_s(pid)
            if seconds is not None:
                self.cpu[pid] = seconds
            rss = peak_rss_mb(pid)
            if rss is not None:
                self.peak_mb[pid] = rss
        return sum(self.cpu.values())
