"""`python -m tests.sim`: run one seed (with its trace) or many (with a summary).

.venv/bin/python -m tests.sim --seed 12345 -v        # replay one seed, print its trace
.venv/bin/python -m tests.sim --seeds 10000 --processes 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from tests.sim.oracle import INVARIANTS
from tests.sim.run import SeedResult, report, run_many, run_seed, trace_lines


def _one(seed: int, verbose: bool) -> int:
    result, world = run_seed(seed)
    if verbose:
        print(world.scenario)
        for line in trace_lines(world):
            print(line)
    print(
        f"seed {seed}: {result.records} records, {result.attempts} attempts, "
        f"{result.virtual_s:.1f} virtual s, {result.steps} steps, trace {result.trace_hash}"
    )
    print(report(result) if result.violations else "ok")
    return 1 if result.violations else 0


def _summary(results: list[SeedResult], elapsed: float) -> str:
    failing = [r for r in results if r.violations]
    per: Counter[str] = Counter()
    first: dict[str, int] = {}
    for result in results:
        for name in sorted({v.invariant for v in result.violations}):
            per[name] += 1
            first.setdefault(name, result.seed)
    lines = [
        f"{len(results)} seeds in {elapsed:.1f} s: {len(results) - len(failing)} ok, "
        f"{len(failing)} failing"
    ]
    for name in INVARIANTS:
        if per[name]:
            lines.append(
                f"  {name:13} {per[name]:6d} seeds  first {first[name]}  ({INVARIANTS[name]})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the run's trace")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--show", type=int, default=5, help="failing seeds to detail")
    args = parser.parse_args(argv)
    if args.seed is not None:
        return _one(args.seed, args.verbose)
    started = time.perf_counter()
    results = run_many(range(args.start, args.start + args.seeds), args.processes)
    elapsed = time.perf_counter() - started
    for result in [r for r in results if r.violations][: args.show]:
        print(report(result))
    print(_summary(results, elapsed))
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
