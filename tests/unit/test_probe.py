"""`python -m worker.ops.probe`, the image's HEALTHCHECK: it asks where the settings say."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from worker.core.stats import Stats
from worker.ops.health import HealthServer
from worker.ops.probe import main, probe_url


@pytest.fixture
def health() -> Iterator[HealthServer]:
    server = HealthServer(0, Stats(), threading.Event(), "127.0.0.1")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, None),  # the worker's default: no endpoint, nothing to probe
        ({"ORDERSTREAM_HTTP_PORT": "0"}, None),
        ({"ORDERSTREAM_HTTP_PORT": "8080"}, "http://127.0.0.1:8080/healthz"),
        ({"ORDERSTREAM_HTTP_PORT": "9100"}, "http://127.0.0.1:9100/healthz"),
        (
            {"ORDERSTREAM_HTTP_PORT": "9100", "ORDERSTREAM_HTTP_HOST": "0.0.0.0"},
            "http://127.0.0.1:9100/healthz",
        ),
        (
            {"ORDERSTREAM_HTTP_PORT": "9100", "ORDERSTREAM_HTTP_HOST": "::"},
            "http://[::1]:9100/healthz",
        ),
        (
            {"ORDERSTREAM_HTTP_PORT": "9100", "ORDERSTREAM_HTTP_HOST": "127.0.0.2"},
            "http://127.0.0.2:9100/healthz",
        ),
        (
            {"ORDERSTREAM_HTTP_PORT": "9100", "ORDERSTREAM_HTTP_HOST": "fd00::5"},
            "http://[fd00::5]:9100/healthz",
        ),
    ],
)
def test_the_probe_url_follows_the_settings(env: dict[str, str], url: str | None) -> None:
    assert probe_url(env) == url


def test_a_serving_worker_is_healthy(health: HealthServer) -> None:
    env = {"ORDERSTREAM_HTTP_PORT": str(health.port), "ORDERSTREAM_HTTP_HOST": "127.0.0.1"}
    assert main([], env) == 0


def test_a_port_nobody_serves_is_unhealthy() -> None:
    assert main([], {"ORDERSTREAM_HTTP_PORT": str(free_port())}) == 1


def test_the_endpoint_off_is_healthy_without_asking() -> None:
    assert main([], {"ORDERSTREAM_HTTP_PORT": "0"}) == 0


def test_a_port_that_is_not_a_number_is_unhealthy() -> None:
    assert main([], {"ORDERSTREAM_HTTP_PORT": "http"}) == 1


def test_the_module_runs_as_the_healthcheck_runs_it(health: HealthServer) -> None:
    env = {"ORDERSTREAM_HTTP_PORT": str(health.port), "PATH": ""}
    ok = subprocess.run(
        [sys.executable, "-m", "worker.ops.probe"], env=env, check=False, timeout=30
    )
    env["ORDERSTREAM_HTTP_PORT"] = str(free_port())
    down = subprocess.run(
        [sys.executable, "-m", "worker.ops.probe"], env=env, check=False, timeout=30
    )
    assert (ok.returncode, down.returncode) == (0, 1)
