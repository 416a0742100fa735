"""`worker run`'s signal handlers: every SIGTERM/SIGINT asks for the stop, the first
alone is logged (a second Ctrl-C while stopping logged `worker.stopping` twice)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from worker import cli
from writer import logs


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("restore_handlers")
def test_each_signal_stops_and_only_the_first_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        logs, "log_from_signal_handler", lambda _emit, event, **kw: logged.append((event, kw))
    )
    stops: list[None] = []
    cli._install_signal_handlers(lambda: stops.append(None), within_s=20.0)
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)

    handler(signal.SIGINT, None)
    handler(signal.SIGINT, None)
    handler(signal.SIGTERM, None)

    assert len(stops) == 3
    assert logged == [("worker.stopping", {"signal": "SIGINT", "within_s": 20.0})]
