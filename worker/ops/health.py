"""`/healthz`, `/readyz` and `/metrics` on ORDERSTREAM_HTTP_PORT (0 = off).

Metrics are read from `Stats` at scrape time by a custom collector, so the numbers
in `/metrics` and in the `worker.stats` log event come from one source.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.core.errors import ConfigError
from worker.core.runtime import Signal
from worker.core.stats import Stats, sink_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A shard counts as polled recently if GetRecords answered within this many seconds.
POLLED_RECENTLY_S = 30.0
# The default of ORDERSTREAM_HTTP_HOST: the orchestrator probes from outside the container.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - documented default, overridable


class StatsCollector(Collector):
    """Reads `Stats` at scrape time, one `counts()` snapshot per scrape, so the
    numbers of one scrape agree with each other."""

    def __init__(self, stats: Stats, clock: Callable[[], float] = time.time) -> None:
        self._stats = stats
        self._clock = clock

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Every metric from one `counts()` snapshot, read at scrape time."""
        counts = self._stats.counts()
        yield CounterMetricFamily(
            "orderstream_records_read", "Stream records read", value=counts.get("records", 0)
        )
        outcomes = CounterMetricFamily(
            "orderstream_notifications",
            "Notifications by sink and outcome",
            labels=["sink", "outcome"],
        )
        per_sink = sorted(sink_counts(counts).items())
        for sink, counted in per_sink:  # dead letters first, then deliveries, each by sink
            if counted.dead_lettered:
                outcomes.add_metric([sink, "dead_lettered"], counted.dead_lettered)
        for sink, counted in per_sink:
            if counted.sent:
                outcomes.add_metric([sink, "delivered"], counted.sent)
        yield outcomes
        for name, help_text in (
            ("retries", "Delivery retries"),
            ("rejected", "Records that could not be understood"),
            ("filtered", "Changes skipped by the transition rules"),
            ("data_loss", "Data-loss events (trimmed or aged-out records)"),
            ("checkpoints", "Checkpoints written"),
            ("throttled", "Stream reads throttled or failing (5xx) after botocore's retries"),
            ("profiles_read", "User profiles read by enrichment (cache misses)"),
            ("profiles_missing", "Users enrichment found no PROFILE item for"),
        ):
            yield CounterMetricFamily(f"orderstream_{name}", help_text, value=counts.get(name, 0))
        yield GaugeMetricFamily(
            "orderstream_dlq_added",
            "Dead letters added by this process",
            value=counts.get("dead_lettered", 0),
        )
        lag = GaugeMetricFamily(
            "orderstream_shard_lag_seconds",
            "Age of the oldest record not yet checkpointed",
            labels=["shard_id"],
        )
        trim = GaugeMetricFamily(
            "orderstream_shard_trim_margin_seconds",
            "Time before the 24 h trim reaches that record",
            labels=["shard_id"],
        )
        for shard_id, facts in self._stats.lag(self._clock()).items():
            lag.add_metric([shard_id], facts["lag_ms"] / 1000)
            trim.add_metric([shard_id], facts["trim_in_ms"] / 1000)
        yield lag
        yield trim
        parked = GaugeMetricFamily(
            "orderstream_lane_parked", "Changes parked in the retry lane", labels=["sink"]
        )
        oldest = GaugeMetricFamily(
            "orderstream_lane_oldest_parked_seconds",
            "How long the oldest parked change has waited",
            labels=["sink"],
        )
        for sink, gauge in sorted(self._stats.lane().items()):
            parked.add_metric([sink], gauge.parked)
            oldest.add_metric([sink], gauge.oldest_age_s)
        yield parked
        yield oldest
        yield from _sink_metrics(self._stats.sinks())


def _sink_metrics(
    sinks: dict[str, dict[str, int]],
) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """Endpoint health per remote sink (set by its GuardedSink)."""
    breaker = GaugeMetricFamily(
        "orderstream_sink_breaker_open",
        "1 while the sink's circuit breaker is open or half-open",
        labels=["sink"],
    )
    disabled = GaugeMetricFamily(
        "orderstream_sink_disabled",
        "1 while the sink is disabled (410 Gone) until `worker sink enable`",
        labels=["sink"],
    )
    refused = CounterMetricFamily(
        "orderstream_sink_refused",
        "Calls refused without an attempt (breaker open or sink disabled)",
        labels=["sink"],
    )
    for sink, facts in sorted(sinks.items()):
        breaker.add_metric([sink], facts["breaker_open"])
        disabled.add_metric([sink], facts["disabled"])
        refused.add_metric([sink], facts["refused"])
    yield breaker
    yield disabled
    yield refused


def is_ready(stats: Stats, lease_held: Signal, now_s: float) -> bool:
    """Ready when the lease is ours and every shard we read answered recently."""
    if not lease_held.is_set():
        return False
    return all(s["last_read_ms_ago"] <= POLLED_RECENTLY_S * 1000 for s in stats.lag(now_s).values())


class HealthServer:
    """The probes and `/metrics` on their own thread, so a scrape never waits for a
    batch; it fails at start-up if the port is taken, naming the setting."""

    def __init__(self, port: int, stats: Stats, ready: Signal, host: str = ALL_INTERFACES) -> None:
        registry = CollectorRegistry()
        registry.register(StatsCollector(stats))
        handler = _handler(stats, ready, registry)
        try:
            self._server = _server_class(host)((host, port), handler)
        except OSError as exc:  # EADDRINUSE above all: a second worker on this host
            raise ConfigError(
                "ORDERSTREAM_HTTP_PORT",
                f"cannot listen on port {port} ({host}): {exc.strerror} (each worker on a host "
                "needs its own port; 0 turns the endpoints off)",
            ) from exc
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    def start(self) -> None:
        """Serve on a daemon thread: it never holds up the process's exit."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket, freeing the port."""
        self._server.shutdown()
        self._server.server_close()


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    """An HTTP server for `host` (ORDERSTREAM_HTTP_HOST): IPv6 literals need AF_INET6."""
    try:
        ipv6 = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        ipv6 = False  # `localhost`
    if not ipv6:
        return ThreadingHTTPServer

    class IPv6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    return IPv6Server


def _handler(
    stats: Stats, ready: Signal, registry: CollectorRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, b"ok\n", "text/plain")
            elif self.path == "/readyz":
                ok = is_ready(stats, ready, time.time())
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n", "text/plain")
            elif self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE)
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # probes every few seconds would drown the JSON log

    return Handler
