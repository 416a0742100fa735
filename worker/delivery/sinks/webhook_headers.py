"""Extra webhook request headers (ORDERSTREAM_WEBHOOK_HEADERS), e.g. for authentication.

The setting is a JSON object of header names to string values. JSON rather than
`Name: value` lines because an environment variable with newlines is awkward or
impossible in `.env` files, compose `environment:` lists and most secret stores, and
JSON quoting carries any value (commas, colons, semicolons) without a second escaping
rule. Values are secrets: no message here repeats one, and the start-up log shows the
names only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

# RFC 9110 field-name: a token.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
# Headers the sink sets itself (the body's type, the signatures, the idempotency key)
# or that frame the request: an operator's value must not replace or duplicate them.
RESERVED = frozenset(
    name.lower()
    for name in (
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Connection",
        "Host",
        "User-Agent",
        "Idempotency-Key",
        "X-Orderstream-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
)
MAX_HEADERS = 32
MAX_VALUE_LENGTH = 8192


class WebhookHeadersError(ValueError):
    """The headers setting is unusable; the message names the header, never its value."""


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (name, value) pairs: json.loads would keep only the last of
    two equal names, silently."""


def parse_headers(text: str) -> dict[str, str]:
    """`{"Name": "value", ...}` to a dict, checked; an empty setting is no headers."""
    if not text.strip():
        return {}
    try:
        loaded = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the text itself may hold a secret.
        raise WebhookHeadersError(
            f"not a JSON object of header names to values ({exc.msg} at char {exc.pos})"
        ) from None
    if not isinstance(loaded, _Pairs):
        raise WebhookHeadersError('must be a JSON object, e.g. {"Authorization": "Bearer ..."}')
    if len(loaded) > MAX_HEADERS:
        raise WebhookHeadersError(f"at most {MAX_HEADERS} headers")
    return check_headers(loaded)


def check_headers(pairs: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Each name a token and not one of ours, given once; each value one line of text."""
    checked: dict[str, str] = {}
    for name, value in pairs:
        if not HEADER_NAME.fullmatch(name):
            raise WebhookHeadersError(f"{name!r} is not a valid header name")
        if name.lower() in RESERVED:
            raise WebhookHeadersError(f"{name!r} is set by orderstream and cannot be overridden")
        if name.lower() in (n.lower() for n in checked):
            raise WebhookHeadersError(f"{name!r} is given twice")
        checked[name] = _check_value(name, value)
    return checked


def _check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise WebhookHeadersError(f"the value of {name!r} must be a string")
    if len(value) > MAX_VALUE_LENGTH:
        raise WebhookHeadersError(f"the value of {name!r} is over {MAX_VALUE_LENGTH} characters")
    if any(ch in "\r\n\x00" for ch in value):
        # A line break would end the header and start another one (header injection).
        raise WebhookHeadersError(f"the value of {name!r} contains CR, LF or NUL")
    if not value.isascii() or any(ch != "\t" and not ch.isprintable() for ch in value):
        raise WebhookHeadersError(
            f"the value of {name!r} must be printable ASCII (encode other text first)"
        )
    return value


def masked(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers for a log line: names kept, every value replaced."""
    return dict.fromkeys(headers, "***")
