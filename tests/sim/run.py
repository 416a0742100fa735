"""Run seeds: one seed is one reproducible run, checked by the oracle."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tests.sim.oracle import Oracle, Violation
from tests.sim.world import World, simulate


@dataclass(frozen=True)
class SeedResult:
    seed: int
    violations: tuple[Violation, ...]
    trace_hash: str
    steps: int
    virtual_s: float
    records: int
    attempts: int

    @property
    def ok(self) -> bool:
        return not self.violations


def replay_command(seed: int) -> str:
    return f".venv/bin/python -m tests.sim --seed {seed} -v"


def trace_lines(world: World) -> Iterator[str]:
    for tick, t, who, *what in world.ledger.trace:
        yield f"{tick:7d} {t:10.4f} {who:6} " + " ".join(str(w) for w in what)


def run_seed(seed: int) -> tuple[SeedResult, World]:
    world, ledger = simulate(seed)
    sc = world.scenario
    oracle = Oracle(ledger, world.rules, sc.start, sc.shutdown_s)
    digest = hashlib.sha256()
    for line in trace_lines(world):
        digest.update(line.encode())
    result = SeedResult(
        seed=seed,
        violations=tuple(oracle.check()),
        trace_hash=digest.hexdigest()[:16],
        steps=world.sched.steps,
        virtual_s=world.sched.now,
        records=len(ledger.written),
        attempts=len(ledger.attempts),
    )
    return result, world


def check_seed(seed: int) -> SeedResult:
    """The picklable unit of work for a process pool."""
    return run_seed(seed)[0]


def run_many(seeds: Iterable[int], processes: int = 1) -> list[SeedResult]:
    seeds = list(seeds)
    if processes <= 1:
        return [check_seed(s) for s in seeds]
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        return pool.map(check_seed, seeds, chunksize=max(1, len(seeds) // (processes * 8)))


def report(result: SeedResult, limit: int = 3) -> str:
    """The violated invariants, a few details each, and one line that replays the seed."""
    lines = [f"seed {result.seed}: {len(result.violations)} violation(s)"]
    by_name: dict[str, list[Violation]] = {}
    for violation in result.violations:
        by_name.setdefault(violation.invariant, []).append(violation)
    for name, violations in by_name.items():
        for violation in violations[:limit]:
            lines.append(f"  [{name}] {violation.detail}")
        if len(violations) > limit:
            lines.append(f"  [{name}] ... and {len(violations) - limit} more")
    lines.append(f"  replay: {replay_command(result.seed)}")
    return "\n".join(lines)
