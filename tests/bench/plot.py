"""The scaling plot of `make bench`: drain rate and CPU per change against shards.

Written with matplotlib's Agg backend (no display); the README shows the PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def scaling(results: dict[str, Any], path: Path) -> Path:
    """Two panels side by side: changes/s (worker with 1 process, with auto, naive loop)
    and the worker's CPU µs per change, both over the number of shards."""
    rows = results["table"]
    shards = [row["shards"] for row in rows]
    figure, (rate, cpu) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for processes, label in (("auto", "worker, auto"), ("1", "worker, 1 process")):
        rate.plot(shards, [r[processes]["changes_per_s"] for r in rows], marker="o", label=label)
        cpu.plot(
            shards, [r[processes]["cpu_us_per_change"] or 0 for r in rows], marker="o", label=label
        )
    rate.plot(shards, [r["naive_changes_per_s"] for r in rows], marker="o", label="naive boto3")
    for axis in (rate, cpu):
        axis.set_xscale("log", base=2)
        axis.set_xticks(shards, [str(s) for s in shards])
        axis.set_xlabel("shards")
        axis.grid(True, alpha=0.3)
        axis.legend()
    per_shard = results["records_per_shard"]
    rate.set_title(f"drain rate ({per_shard:,} changes per shard)")
    rate.set_ylabel("changes / s")
    cpu.set_title("worker CPU per change (user + sys)")
    cpu.set_ylabel("µs")
    cpu.set_ylim(bottom=0)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
