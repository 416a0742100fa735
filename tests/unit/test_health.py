"""The health server binds the address in ORDERSTREAM_HTTP_HOST (loopback only here);
`/metrics` reads Stats."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from worker.core.stats import Stats
from worker.ops.health import HealthServer, StatsCollector


@contextlib.contextmanager
def serving(host: str) -> Iterator[HealthServer]:
    server = HealthServer(0, Stats(), threading.Event(), host)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bound_address(server: HealthServer) -> str:
    return str(server._server.server_address[0])


def test_the_default_is_every_interface() -> None:
    server = HealthServer(0, Stats(), threading.Event())
    try:
        assert bound_address(server) == "0.0.0.0"
    finally:
        server._server.server_close()


def test_a_loopback_host_binds_loopback_only() -> None:
    with serving("127.0.0.1") as server:
        assert bound_address(server) == "127.0.0.1"
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"ok\n"


def test_an_ipv6_literal_binds_an_ipv6_socket() -> None:
    try:
        context = serving("::1")
        server = context.__enter__()
    except OSError:
        pytest.skip("no ::1 on this host")
    try:
        assert server._server.socket.family == socket.AF_INET6
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        context.__exit__(None, None, None)


def test_metrics_count_throttled_stream_reads() -> None:
    stats = Stats()
    stats.add("throttled", 3)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, clock=lambda: 0.0))

    assert "orderstream_throttled_total 3.0" in generate_latest(registry).decode().splitlines()


def test_metrics_read_the_typed_per_sink_counters_children_included() -> None:
    stats = Stats()
    stats.set_breaker_open("webhook", False)
    stats.set_disabled("webhook", False)
    stats.sent("webhook")
    stats.sent("log")
    stats.dead_lettered("webhook")
    stats.refused("webhook")
    stats.set_breaker_open("webhook", True)
    stats.absorb("child-1", {"sent.webhook": 2, "dead_lettered.sqs": 1}, {})
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, clock=lambda: 0.0))

    lines = generate_latest(registry).decode().splitlines()

    assert [line for line in lines if line.startswith("orderstream_notifications_total")] == [
        'orderstream_notifications_total{outcome="dead_lettered",sink="sqs"} 1.0',
        'orderstream_notifications_total{outcome="dead_lettered",sink="webhook"} 1.0',
        'orderstream_notifications_total{outcome="delivered",sink="log"} 1.0',
        'orderstream_notifications_total{outcome="delivered",sink="webhook"} 3.0',
    ]
    assert 'orderstream_sink_breaker_open{sink="webhook"} 1.0' in lines
    assert 'orderstream_sink_refused_total{sink="webhook"} 1.0' in lines
    assert stats.sinks() == {"webhook": {"breaker_open": 1, "disabled": 0, "refused": 1}}
    assert stats.totals()["notifications"] == 4


def test_enrichment_counts_are_metrics() -> None:
    stats = Stats()
    stats.add("profiles_read", 5)
    stats.add("profiles_missing", 2)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, clock=lambda: 0.0))
    lines = generate_latest(registry).decode().splitlines()
    assert "orderstream_profiles_read_total 5.0" in lines
    assert "orderstream_profiles_missing_total 2.0" in lines
