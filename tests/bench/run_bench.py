"""`make bench`: the performance suite (not part of `make test`), one machine, one run.

    python -m tests.bench.run_bench [--shards 8 --records 5000 --processes N] [--only drain,...]

a. drain: the worker's full pipeline vs a naive boto3 loop on a canned backlog.
b. latency: write -> notification p50/p99 and idle GetRecords calls on moto.
c. dispatch: webhook deliveries, default concurrency vs one at a time.
d. lane: a webhook down for a minute (and a kill -9 then), one order refused forever.
e. enrich: profile enrichment's read units per notification and added latency per page.

Prints a table (metric, value, target, pass/fail) and writes bench/results.json.
Exit 0 whatever the figures are (a missed target is reported, not an error); exit 1
only if the harness could not measure honestly: lost, repeated or wrong notifications,
checkpoints short of the end, order broken, a process that died or timed out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from tests.bench import (
    bench_dispatch,
    bench_drain,
    bench_enrich,
    bench_lane,
    bench_latency,
    plot,
    report,
)
from tests.bench.processes import (
    SAFE_AWS_ENV,
    HarnessError,
    Processes,
    start_canned,
    start_moto,
)

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("drain", "scaling", "latency", "dispatch", "lane", "enrich")


def _env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run_bench")
    add = parser.add_argument
    # The workload, 4 shards x 5,000 changes; the scaling section adds 1 to 16.
    add("--shards", type=int, default=int(_env_default("BENCH_SHARDS", "4")))
    # The worker's default: one reader process per core, up to the shards read.
    add("--processes", default=_env_default("BENCH_PROCESSES", "auto"),
        help="ORDERSTREAM_PROCESSES for the worker: auto or a number")  # fmt: skip
    add("--records", type=int, default=int(_env_default("BENCH_RECORDS", "5000")),
        help="records per shard")  # fmt: skip
    add("--seed", type=int, default=int(_env_default("BENCH_SEED", "0")))
    add("--runs", type=int, default=int(_env_default("BENCH_RUNS", "5")),
        help="drain: rounds of worker and naive loop; the median is reported")  # fmt: skip
    add("--plot", type=Path, default=ROOT / "docs" / "images" / "bench-scaling.png",
        help="scaling: where the plot is written")  # fmt: skip
    add("--changes", type=int, default=int(_env_default("BENCH_LATENCY_CHANGES", "40")))
    add("--idle-window", type=float, default=float(_env_default("BENCH_IDLE_WINDOW_S", "5")))
    add("--notifications", type=int,
        default=int(_env_default("BENCH_DISPATCH_NOTIFICATIONS", "1000")))  # fmt: skip
    add("--orders", type=int, default=int(_env_default("BENCH_DISPATCH_ORDERS", "100")))
    add("--delay-ms", type=int, default=int(_env_default("BENCH_DISPATCH_DELAY_MS", "50")))
    add("--concurrency", type=int, default=bench_dispatch.DEFAULT_CONCURRENCY)
    add("--outage", type=float, default=float(_env_default("BENCH_LANE_OUTAGE_S", "60")),
        help="lane: seconds the webhook is down")  # fmt: skip
    add("--write-rate", type=float, default=float(_env_default("BENCH_LANE_RATE", "8")),
        help="lane: status changes per second")  # fmt: skip
    add("--lane-orders", type=int, default=int(_env_default("BENCH_LANE_ORDERS", "20")))
    add("--only", default=_env_default("BENCH_ONLY", ",".join(SECTIONS)),
        help="comma list of drain, scaling, latency, dispatch, lane, enrich")  # fmt: skip
    add("--out", type=Path, default=ROOT / "bench" / "results.json")
    add("--keep", action="store_true", help="keep the work directory (logs of every process)")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}")
    return args


def _safe_process_env() -> None:
    """This process creates boto3 clients too: the same safe settings as its children."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "ORDERSTREAM_")):
            del os.environ[key]
    os.environ.update(SAFE_AWS_ENV)


def _stop_on_sigterm() -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handle)


def _section(name: str, results: dict[str, Any], action: Callable[[], dict[str, Any]]) -> None:
    print(f"== {name} ...", flush=True)
    started = time.monotonic()
    try:
        results[name] = action()
    except HarnessError as exc:
        results[name] = {"problems": [f"harness: {exc}"]}
    except Exception as exc:
        traceback.print_exc()
        results[name] = {"problems": [f"harness: {type(exc).__name__}: {exc}"]}
    results[name]["seconds"] = round(time.monotonic() - started, 1)
    for problem in results[name].get("problems", []):
        print(f"   problem: {problem}", flush=True)


def run_sections(args: argparse.Namespace, procs: Processes, results: dict[str, Any]) -> None:
    on_moto = {"drain", "scaling", "latency", "enrich"}
    moto_url = start_moto(procs) if on_moto & set(args.only) else ""
    canned: dict[int, int] = {}

    def drain_setup(shards: int) -> bench_drain.DrainSetup:
        if shards not in canned:
            canned[shards] = start_canned(procs, shards, args.records, args.seed)
        return bench_drain.DrainSetup(
            shards, args.records, args.seed, moto_url, canned[shards], args.processes
        )

    if "drain" in args.only:
        setup, one = drain_setup(args.shards), drain_setup(1)
        _section("drain", results, lambda: bench_drain.run(procs, setup, one, args.runs))
    if "scaling" in args.only:
        setups = {n: drain_setup(n) for n in bench_drain.SCALING_SHARDS}
        _section("scaling", results, lambda: bench_drain.scaling(procs, setups))
    if "latency" in args.only:
        latency = bench_latency.LatencySetup(moto_url, args.changes, args.idle_window, args.seed)
        _section("latency", results, lambda: bench_latency.run(procs, latency))
    if "dispatch" in args.only:
        dispatch = bench_dispatch.DispatchSetup(
            args.notifications, args.orders, args.delay_ms / 1000, args.concurrency, seed=args.seed
        )
        _section("dispatch", results, lambda: bench_dispatch.run(dispatch))
    if "lane" in args.only:
        lane = bench_lane.LaneSetup(
            start_moto(procs, serial=True),
            args.outage,
            args.write_rate,
            args.lane_orders,
            seed=args.seed,
        )
        _section("lane", results, lambda: bench_lane.run(procs, lane))
    if "enrich" in args.only:
        enrich = bench_enrich.EnrichSetup(moto_url, seed=args.seed)
        _section("enrich", results, lambda: bench_enrich.run(enrich))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _safe_process_env()
    _stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="orderstream-bench-"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    started = time.monotonic()
    procs = Processes(workdir)
    try:
        run_sections(args, procs, results)
    except HarnessError as exc:
        results.setdefault("problems", []).append(f"harness: {exc}")
    finally:
        procs.stop_all()
    results["duration_s"] = round(time.monotonic() - started, 1)
    problems = [*results.get("problems", [])]
    problems += [p for s in SECTIONS for p in results.get(s, {}).get("problems", [])]
    results["harness_ok"] = not problems
    rows = report.rows({k: v for k, v in results.items() if k in args.only})
    print()
    print(report.table(rows))
    if "scaling" in results and "table" in results["scaling"]:
        print("\n" + report.scaling_table(results["scaling"]))
        results["scaling"]["plot"] = str(plot.scaling(results["scaling"], args.plot))
        print(f"plot: {args.plot}")
    print(f"\nmachine: {results['machine']['nproc']} CPUs, {results['machine']['cpu']}")
    report.write(args.out, results, rows)
    print(f"results: {args.out}")
    if problems or args.keep:
        print(f"work directory (process logs): {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if problems:
        print("HARNESS FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
