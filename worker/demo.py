"""`worker demo`: the whole mission on an embedded moto server, no AWS account needed."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from worker import wiring as app
from worker.aws import Clients
from worker.core.models import Notification
from worker.delivery.sinks import Sink
from worker.delivery.sinks.email_templates import EmailTemplates
from worker.settings import WorkerSettings
from writer.aws import dynamodb_client
from writer.models import OrderStatus
from writer.repository import OrderRepository
from writer.seed import seed

DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_PREFIXES = ("AWS_",)  # endpoints, profile, credentials, region: all the demo's own
EXPECTED = 6  # three seed inserts, two status moves, one new order
SENDER = "orderstream demo <orders@example.com>"
# The shipment also goes out as an email and an EventBridge event (issue 17's sinks).
ROUTES = "Processing>Shipped:log+email+eventbridge,*>*:log"
DEADLINE_S = 30.0
NEXT_STEPS = """
next, try:
  .venv/bin/worker run --help     # the worker's settings, each with its default
  .venv/bin/writer --help         # users, orders and status changes by hand
  less README.md                  # "Run it locally": a local AWS, your own webhook, the DLQ
"""


class EchoSink:
    """Prints each notification as it is dispatched, and keeps it for the summary."""

    name = "log"
    local = True

    def __init__(self) -> None:
        self.received: list[tuple[float, Notification]] = []
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        """One JSON line on stdout, under the lock: delivery threads send concurrently."""
        line = json.dumps(notification.body()) + "\n"
        with self._lock:
            self.received.append((time.time(), notification))
            sys.stdout.write(line)  # one write per line: delivery threads run concurrently
            sys.stdout.flush()

    def flush(self) -> None:
        """Nothing to make durable: each line was flushed as it was sent."""
        return None

    def close(self) -> None:
        """Nothing to release."""
        return None


class Announced:
    """A real sink that also says on stdout what it just sent (the email, the event)."""

    local = False

    def __init__(self, sink: Sink, describe: Callable[[Notification], str]) -> None:
        self.name = sink.name
        self._sink = sink
        self._describe = describe
        self.sent = 0

    def send(self, notification: Notification) -> None:
        """The real send first: only a send that returned is announced and counted in `sent`."""
        self._sink.send(notification)
        self.sent += 1
        sys.stdout.write(self._describe(notification) + "\n")
        sys.stdout.flush()

    def flush(self) -> None:
        """The real sink's flush (what the dispatcher relies on before a checkpoint)."""
        self._sink.flush()

    def close(self) -> None:
        """Closes the real sink."""
        self._sink.close()


class DemoSinks:
    """The echoing log sink in place of the log sink, and the email and EventBridge sinks
    the composition root builds, each announcing what it sends (the embedded AWS's
    sender verified first)."""

    def __init__(self, settings: WorkerSettings, clients: Clients) -> None:
        clients.sesv2().create_email_identity(EmailIdentity=SENDER.split("<")[1].rstrip(">"))
        self._settings = settings
        self._templates = EmailTemplates()
        self.echo = EchoSink()
        self.announced: list[Announced] = []

    def wrap(self, name: str, sink: Sink) -> Sink:
        """`worker.wiring`'s hook: each plain sink, as the demo shows it."""
        if name == "log":
            return self.echo
        describe = self._mail if name == "email" else self._event
        announced = Announced(sink, describe)
        self.announced.append(announced)
        return announced

    def _mail(self, n: Notification) -> str:
        assert n.user is not None
        assert n.user.email is not None
        subject = self._templates.render(n, n.user).subject
        return f"email sent to {n.user.email}: {subject}"

    def _event(self, n: Notification) -> str:
        name = n.user.name if n.user else None
        return (
            f"event put on bus {self._settings.eventbridge_bus}: {n.order_id} "
            f"{n.old_status} -> {n.new_status} (user {name})"
        )


@contextmanager
def embedded_aws() -> Iterator[str]:
    """Its own moto server on a free loopback port, always: whatever AWS_ENDPOINT_URL*,
    profile or credentials the shell has (a walk-through's moto, a real account), the
    demo never touches them. The environment is put back afterwards."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the demo needs moto

    saved = {k: v for k, v in os.environ.items() if k.startswith(_AWS_PREFIXES)}
    for key in saved:
        del os.environ[key]
    os.environ.update(DEMO_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield url
    finally:
        server.stop()
        for key in [k for k in os.environ if k.startswith(_AWS_PREFIXES)]:
            del os.environ[key]
        os.environ.update(saved)


def _wait_for(done: Callable[[], bool], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if done():
            return True
        time.sleep(0.05)
    return False


def _scenario(repo: OrderRepository) -> None:
    repo.set_status("USR001", "ORD1002", OrderStatus.SHIPPED)
    repo.set_status("USR001", "ORD1001", OrderStatus.DELIVERED)
    repo.put_order("USR002", "ORD1004", "75.50")


def run_demo(settings: WorkerSettings) -> int:
    """`worker demo`: seed, start the worker, write a few changes; 0 if every expected
    notification (the email and the event too) came within DEADLINE_S."""
    with embedded_aws() as endpoint:
        print(f"orderstream demo: embedded AWS at {endpoint}", flush=True)
        settings = replace(
            settings,
            sinks=("log", "email", "eventbridge"),
            routes=ROUTES,
            email_from=SENDER,
            app=f"{settings.app}-demo",
            region=settings.region or "us-east-1",
            stats_interval_s=3600,
        )
        repo = OrderRepository(dynamodb_client(settings.region), settings.table)
        repo.create_table()
        seed(repo)
        print("table created and seeded; starting the worker", flush=True)
        stop = threading.Event()
        clients = Clients(settings.region)
        demo = DemoSinks(settings, clients)
        echo, announced = demo.echo, demo.announced
        worker = app.build_worker(settings, clients, stop, wrap=demo.wrap)
        thread = threading.Thread(target=worker.runner.run, name="runner")
        thread.start()
        try:
            _wait_for(lambda: len(echo.received) >= 3, DEADLINE_S)
            written = time.time()
            _scenario(repo)
            complete = _wait_for(
                lambda: len(echo.received) >= EXPECTED and all(s.sent for s in announced),
                DEADLINE_S,
            )
        finally:
            worker.runner.request_stop()
            thread.join(timeout=settings.shutdown_s)
            worker.dispatcher.close()
        _summary(echo, written)
        return 0 if complete else 1


def _summary(sink: EchoSink, written: float) -> None:
    print("\nsummary", flush=True)
    print(f"{'order':<9} {'user':<7} {'old':<11} {'new':<11} {'amount':>7}  after write")
    for at, n in sink.received:
        delay = f"{(at - written) * 1000:.0f} ms" if at >= written else "(seed)"
        print(
            f"{n.order_id:<9} {n.user_id:<7} {n.old_status or '-':<11} {n.new_status:<11} "
            f"{n.amount or '-':>7}  {delay}"
        )
    print(f"{len(sink.received)} notifications, stopped gracefully", flush=True)
    print(NEXT_STEPS, end="", flush=True)
