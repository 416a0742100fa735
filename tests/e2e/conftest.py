"""Fixtures for end-to-end tests: console scripts against a moto server process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.processes import ScriptProcess, script


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str, extra_env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [script(args[0]), *args[1:]],
            env={**cli_env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
        return result

    return run


@pytest.fixture
def start_worker(cli_env: dict[str, str]) -> Iterator[Callable[..., ScriptProcess]]:
    started: list[ScriptProcess] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> ScriptProcess:
        env = {
            **cli_env,
            "ORDERSTREAM_STATS_INTERVAL_S": "1",
            "ORDERSTREAM_IDLE_WAIT_MS": "200",
            **(extra_env or {}),
        }
        process = ScriptProcess(["worker", *(args or ("run",))], env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def seeded(run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run_cli("writer", "create-table")
    run_cli("writer", "seed")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `make test`'s two processes (`--dist loadgroup`), every end-to-end test runs
    in one of them, one at a time, as when the suite ran alone: their workers, daemons
    and deadlines never compete with each other, while the other process runs the rest."""
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("e2e"))
