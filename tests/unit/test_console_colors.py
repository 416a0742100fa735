"""The console log's colours: on a terminal, unless NO_COLOR asks for none (no-color.org)."""

from __future__ import annotations

import io

import pytest

from writer import logs


class Terminal(io.StringIO):
    """A stream that says it is a TTY, as a terminal does."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "no_color", "colored"),
    [
        (Terminal(), None, True),
        (Terminal(), "1", False),
        (Terminal(), "", True),  # set but empty: ignored, as no-color.org says
        (io.StringIO(), None, False),
    ],
)
def test_colours_only_on_a_terminal_without_no_color(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, no_color: str | None, colored: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert logs.wants_color(stream) is colored
