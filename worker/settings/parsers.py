"""Setting parsers: text of a variable or flag to a value, or a ValueError of one line.

The bounds live here (`int_range(1, 64)`); a parser built by a factory carries them as
`accepts`, which the generated settings table shows.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Generic, Literal, TypeVar

from worker.delivery.sinks.signing import SigningKey, parse_secrets
from writer.settings import TABLE_NAME

T = TypeVar("T")

SINK_NAMES = ("log", "webhook", "sns", "sqs", "email", "eventbridge")
# EventBridge's names: a bus name (or ARN) and an event source.
BUS_NAME = re.compile(r"^(arn:[\w+=,.@/:-]{1,1600}|[/.\-_A-Za-z0-9]{1,256})$")
EVENT_SOURCE = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")
APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True, kw_only=True)
class Parser(Generic[T]):
    """A parser with the values it accepts, as the docs show them (`1..64`)."""

    parse: Callable[[str], T]
    accepts: str

    def __call__(self, text: str) -> T:
        """Parse as the wrapped function does: a Parser goes wherever a plain parser would."""
        return self.parse(text)


def int_range(low: int, high: int) -> Parser[int]:
    """An integer in `low..high`, both included."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return Parser(parse=parse, accepts=f"{low}..{high}")


def float_range(low: float, high: float, *, open_low: bool = False) -> Parser[float]:
    """A number in `[low, high]`; with `open_low`, `(low, high]`: `low` itself refused."""
    bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not (low < value if open_low else low <= value) or not value <= high:
            raise ValueError(f"{text} is outside {bounds}")
        return value

    return Parser(parse=parse, accepts=bounds)


def choice(*options: str) -> Parser[str]:
    """One of `options`, exactly as written (case matters)."""

    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return Parser(parse=parse, accepts=", ".join(f"`{o}`" for o in options))


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not on/off")


boolean = Parser(parse=_bool, accepts="`on`/`off` (or `true`/`false`)")


def _table(text: str) -> str:
    if not TABLE_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a DynamoDB table name")
    return text


table = Parser(parse=_table, accepts="a DynamoDB table name (3 to 255 of `a-z A-Z 0-9 _ . -`)")


def _app(text: str) -> str:
    if not APP_NAME.fullmatch(text):
        raise ValueError(f"{text!r} must match {APP_NAME.pattern}")
    return text


app = Parser(parse=_app, accepts="1 to 128 of `a-z A-Z 0-9 _ . -`")


def sinks(text: str) -> tuple[str, ...]:
    """Sink names, comma-separated: at least one, each known, none twice."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in SINK_NAMES]
    if not names:
        raise ValueError(f"{text!r}: choose from {', '.join(SINK_NAMES)}")
    if unknown:
        close = difflib.get_close_matches(unknown[0], SINK_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{unknown[0]!r} is not a sink{hint}: choose from {', '.join(SINK_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{text!r} names a sink twice")
    return names


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


def _schedule(text: str) -> tuple[float, ...]:
    """`5s,5m,30m,2h` as seconds; `off` turns the retry lane off. An empty value is an
    error: it must not turn the lane off by accident."""
    if text.strip().lower() == "off":
        return ()
    if not text.strip():
        raise ValueError("empty: give waits like 5s,5m,2h, or off to turn the lane off")
    waits: list[float] = []
    for part in text.split(","):
        match = _DURATION.fullmatch(part.strip())
        if not match or float(match[1]) <= 0:
            raise ValueError(f"{part.strip()!r} is not a duration like 5s, 5m, 2h (or use off)")
        waits.append(float(match[1]) * _UNITS[match[2]])
    if len(waits) > 50:
        raise ValueError("at most 50 steps")
    if max(waits) > 7 * 86400:
        raise ValueError(
            "a step of more than 7 days: past the stream's and most receivers' patience"
        )
    return tuple(waits)


schedule = Parser(parse=_schedule, accepts="1 to 50 waits of at most `7d`, or `off`")


def _processes(text: str) -> int | Literal["auto"]:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int_range(1, 64)(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; use auto or 1..64") from None


processes = Parser(parse=_processes, accepts="`auto` or 1..64")


def optional(text: str) -> str | None:
    """Any text; empty counts as unset (None)."""
    return text or None


def secrets(text: str) -> tuple[SigningKey, ...]:
    """Empty means unsigned, as when the variable is unset."""
    return parse_secrets(text) if text else ()


def sender(text: str) -> str | None:
    """`shop@example.com` or `Shop <shop@example.com>`: one address, on one line."""
    if not text:
        return None
    addresses = getaddresses([text])
    if len(addresses) != 1 or "@" not in addresses[0][1] or any(ch in text for ch in "\r\n"):
        raise ValueError(f"{text!r} is not one email address (e.g. Shop <shop@example.com>)")
    return text


def bus(text: str) -> str:
    """An EventBridge bus name or ARN, as PutEvents takes it."""
    if not BUS_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not an EventBridge bus name or ARN")
    return text


def event_source(text: str) -> str:
    """An event source for PutEvents; `aws.*` is AWS's own, so refused."""
    if not EVENT_SOURCE.fullmatch(text) or text.startswith("aws."):
        raise ValueError(f"{text!r} is not an event source (letters, digits, ._/-; not aws.*)")
    return text


def _host(text: str) -> str:
    """An address to bind: an IP literal (no name lookups at start-up) or `localhost`."""
    if text == "localhost":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)") from None
    return text


host = Parser(parse=_host, accepts="an IP address or `localhost`")


def _stream_arn(text: str) -> str | None:
    if text and not text.startswith("arn:"):
        raise ValueError(f"{text!r} is not an ARN")
    return text or None


stream_arn = Parser(parse=_stream_arn, accepts="a stream ARN")
