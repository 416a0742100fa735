"""The benchmark's verdict: a table of metric, value, target, pass/fail, and results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (metric, path in results, format, target as (">=" | "<=", threshold) or None)
SPECS: list[tuple[str, str, str, tuple[str, float] | None]] = [
    (
        "a. canned server to a trivial client",
        "drain.canned_server.records_per_s",
        "{:,} rec/s",
        None,
    ),
    ("a. canned server headroom over faster side", "drain.server_headroom", "{:.1f}x", (">=", 2)),
    ("a. worker drain rate", "drain.worker.changes_per_s", "{:,.0f} changes/s", None),
    ("a. naive boto3 drain rate", "drain.naive.changes_per_s", "{:,.0f} changes/s", None),
    ("a. worker / naive (median of the runs)", "drain.ratio", "{:.2f}x", (">=", 6)),
    ("a. worker / naive, slowest run", "drain.ratio_min", "{:.2f}x", None),
    ("a. worker / naive, fastest run", "drain.ratio_max", "{:.2f}x", None),
    ("a. one shard: worker / naive (median)", "drain.one_shard.ratio", "{:.2f}x", (">=", 3)),
    # CPU (user + sys) of the worker and its reader processes from the first to the last
    # notification, over the changes between; "whole run" includes start-up and set-up.
    ("a. worker CPU per change", "drain.worker.cpu_us_per_change", "{:.1f} µs", ("<=", 30)),
    (
        "a. worker CPU per change, whole run",
        "drain.worker.process_cpu_us_per_change",
        "{:.1f} µs",
        None,
    ),
    (
        "a. naive CPU per change, whole run",
        "drain.naive.process_cpu_us_per_change",
        "{:.1f} µs",
        None,
    ),
    (
        "a. worker peak RSS, largest process",
        "drain.worker.peak_rss_mb_max",
        "{:.0f} MB",
        ("<=", 200),
    ),
    ("b. write -> notification p50", "latency.p50_s", "{:.3f} s", ("<=", 0.25)),
    ("b. write -> notification p99", "latency.p99_s", "{:.3f} s", ("<=", 1)),
    (
        "b. idle GetRecords per shard",
        "latency.idle_get_records_per_s_per_shard",
        "{:.2f} /s",
        ("<=", 2),
    ),
    ("c. dispatch, default concurrency", "dispatch.concurrent.wall_s", "{:.2f} s", None),
    ("c. dispatch, one at a time", "dispatch.one_at_a_time.wall_s", "{:.2f} s", None),
    ("c. speedup", "dispatch.speedup", "{:.1f}x", (">=", 25)),
    # d. The retry lane: a webhook down (503) while SQS and the stream go on.
    ("d. outage: SQS write -> delivery p50", "lane.outage.sqs_p50_s", "{:.3f} s", None),
    ("d. outage: SQS write -> delivery p99", "lane.outage.sqs_p99_s", "{:.3f} s", ("<=", 2)),
    ("d. outage: max shard lag", "lane.outage.lag_max_s", "{:.2f} s", ("<=", 5)),
    ("d. outage: parked when the webhook returns", "lane.outage.parked_at_return", "{:.0f}", None),
    (
        "d. outage: return -> all parked delivered",
        "lane.outage.recovery_s",
        "{:.1f} s",
        ("<=", 60),
    ),
    ("d. kill -9: standby took over after", "lane.kill.takeover_s", "{:.1f} s", None),
    ("d. kill -9: SQS write -> delivery p50", "lane.kill.sqs_p50_s", "{:.3f} s", None),
    ("d. kill -9: SQS write -> delivery p99", "lane.kill.sqs_p99_s", "{:.3f} s", ("<=", 2)),
    ("d. kill -9: max shard lag", "lane.kill.lag_max_s", "{:.2f} s", ("<=", 5)),
    ("d. kill -9: SQS re-sent (at least once)", "lane.kill.sqs_resent", "{:d}", None),
    (
        "d. kill -9: return -> all parked delivered",
        "lane.kill.recovery_s",
        "{:.1f} s",
        ("<=", 60),
    ),
    ("d. poison: other orders' webhook p50", "lane.poison.others_p50_s", "{:.3f} s", None),
    ("d. poison: other orders' webhook p99", "lane.poison.others_p99_s", "{:.3f} s", ("<=", 2)),
    ("d. poison: its changes in the DLQ", "lane.poison.dead_lettered", "{:d}", None),
    # e. Profile enrichment: 100 users x 10 changes, pages of 100 (tests/bench/bench_enrich.py).
    (
        "e. enrich: read units per notification",
        "enrich.read_units_per_notification",
        "{:.3f} RCU",
        ("<=", 0.1),
    ),
    (
        "e. enrich: as moto reports them",
        "enrich.reported_read_units_per_notification",
        "{:.3f} RCU",
        None,
    ),
    ("e. enrich: added per page, cold p50", "enrich.cold_page.p50_ms", "{:.1f} ms", None),
    ("e. enrich: added per page, cold max", "enrich.cold_page.max_ms", "{:.1f} ms", None),
    ("e. enrich: added per page, warm p50", "enrich.warm_page.p50_ms", "{:.2f} ms", None),
    ("e. enrich: added per notification", "enrich.added_ms_per_notification", "{:.3f} ms", None),
]


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str = ""
    passed: bool | None = None  # None: informational, no target

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else ("pass" if self.passed else "FAIL")


def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def rows(results: dict[str, Any]) -> list[Row]:
    built = []
    for metric, path, fmt, target in SPECS:
        if path.split(".")[0] not in results:
            continue  # a section not run this time
        value = _get(results, path)
        unit = fmt.rsplit("}", 1)[1]
        goal = f"{target[0]} {target[1]:g}{unit}" if target else ""
        if value is None:
            built.append(Row(metric, "n/a", goal, False if target else None))
            continue
        passed = None
        if target is not None:
            passed = value >= target[1] if target[0] == ">=" else value <= target[1]
        built.append(Row(metric, fmt.format(value), goal, passed))
    return built


def table(all_rows: list[Row]) -> str:
    header = Row("metric", "value", "target")
    widths = [
        max(len(r.metric) for r in [header, *all_rows]),
        max(len(r.value) for r in [header, *all_rows]),
        max(len(r.target) for r in [header, *all_rows]),
    ]
    lines = []
    for row in [header, *all_rows]:
        verdict = "pass/fail" if row is header else row.verdict
        cells = (
            row.metric.ljust(widths[0]),
            row.value.rjust(widths[1]),
            row.target.ljust(widths[2]),
        )
        lines.append(f"{cells[0]}  {cells[1]}  {cells[2]}  {verdict}")
        if row is header:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def scaling_table(scaling: dict[str, Any]) -> str:
    """Shards down, one process and auto across: rate, ratio to naive, CPU, peak RSS."""
    head = (
        f"scaling ({scaling['records_per_shard']:,} records per shard)   naive/s"
        "   1 proc/s  ratio  µs/chg  RSS MB   auto/s  ratio  µs/chg  RSS MB  procs"
    )
    lines = [head, "-" * len(head)]
    for row in scaling["table"]:
        cells = [f"{row['shards']:>2} shards".ljust(41), f"{row['naive_changes_per_s']:>8,.0f}"]
        for processes in ("1", "auto"):
            run = row[processes]
            cells += [
                f"{run['changes_per_s']:>10,.0f}",
                f"{run['ratio']:>5.2f}x",
                f"{run['cpu_us_per_change'] or 0:>6.1f}",
                f"{run['peak_rss_mb_max'] or 0:>6.0f}",
            ]
        cells.append(f"{row['auto'].get('processes_seen') or 0:>5}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def write(path: Path, results: dict[str, Any], all_rows: list[Row]) -> None:
    results["verdicts"] = [
        {"metric": r.metric, "value": r.value, "target": r.target, "pass": r.passed}
        for r in all_rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
