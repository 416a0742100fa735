"""Input validation: IDs, emails, amounts and statuses, each failure naming its field."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from writer.errors import ValidationError
from writer.models import OrderStatus

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Deliberately loose: one @, a dot in the domain, no spaces. Deliverability is the mail
# server's business; this only rejects what is plainly not an address.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_NAME_LENGTH = 256
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_AMOUNT = Decimal("1e12")
# ASCII digits, then optionally a dot and one or two digits: nothing else. Python's
# Decimal() also takes Unicode digits, underscores, exponents, signs, spaces, NaN and
# Infinity, each a way to store something other than what the user typed. `.5` and `5.`
# are refused too: nobody writes money that way, and "5." looks like a typo for 5.x.
AMOUNT_PATTERN = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
MAX_AMOUNT_TEXT = 32  # far beyond 12 digits and 2 decimals, however many leading zeros
# Unicode categories no name or address needs, each a way to hide or restyle text on a
# terminal or in a log viewer: controls (Cc: NUL, ESC, DEL, C1 such as U+009B CSI),
# format characters (Cf: bidi overrides, zero-width), line/paragraph separators, and
# surrogates (Cs: bytes in argv that are not UTF-8, which DynamoDB cannot store).
FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "not valid UTF-8 text",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def check_id(field: str, value: str) -> str:
    """A user or order id: 1 to 64 of `A-Z a-z 0-9 _ -`, safe inside a key."""
    if not ID_PATTERN.fullmatch(value):
        raise ValidationError(field, f"{value!r} must match {ID_PATTERN.pattern}")
    return value


def check_text(field: str, value: str) -> str:
    """Refuse the first character of a forbidden category, naming it and its place."""
    for position, char in enumerate(value, start=1):
        kind = FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            raise ValidationError(
                field, f"U+{ord(char):04X} at position {position} is {kind}, not allowed"
            )
    return value


def check_name(value: str) -> str:
    """A name with no hidden characters, stripped, of 1 to 256 characters."""
    stripped = check_text("name", value).strip()
    if not stripped:
        raise ValidationError("name", "must not be empty")
    if len(stripped) > MAX_NAME_LENGTH:
        raise ValidationError("name", f"must be at most {MAX_NAME_LENGTH} characters")
    return stripped


def check_email(value: str) -> str:
    """Loosely an address (one `@`, a dotted domain), no hidden characters, at most 254."""
    check_text("email", value)
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(value):
        raise ValidationError("email", f"{value!r} does not look like an address")
    return value


def parse_amount(value: str | Decimal) -> Decimal:
    """ASCII `[0-9]+(.[0-9]{1,2})?` below 10^12, as typed; never a float on the way.

    A Decimal (Python API) is judged by its plain text (`format(value, "f")`), so it
    passes the same rule. The result prints as that same plain text: no exponent, no
    sign, the places given ("19.90" stays "19.90").
    """
    if isinstance(value, Decimal):
        text = format(value, "f") if value.is_finite() else str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValidationError("amount", f"{value!r} is not text or a Decimal")
    if len(text) > MAX_AMOUNT_TEXT or not AMOUNT_PATTERN.fullmatch(text):
        raise ValidationError("amount", _amount_problem(text))
    amount = Decimal(text)
    if amount >= MAX_AMOUNT:
        raise ValidationError("amount", f"{text!r} is too large (at most 999999999999.99)")
    return amount


def _amount_problem(text: str) -> str:
    """The most useful of the reasons why `text` is not an amount."""
    if text.startswith("-") and AMOUNT_PATTERN.fullmatch(text[1:]):
        return f"{text!r} is negative"
    if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
        return f"{text!r} has more than 2 decimal places"
    if len(text) > MAX_AMOUNT_TEXT and text.isascii() and text.isdigit():
        return f"{text[:16]!r}... is too large (at most 999999999999.99)"
    return (
        f"{text[:40]!r} is not a plain decimal: use ASCII digits, optionally a '.' "
        "and 1 or 2 decimals (e.g. 19.90)"
    )


def parse_status(value: str, field: str = "status") -> OrderStatus:
    """A status the writer knows, spelled exactly; the error lists them."""
    try:
        return OrderStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in OrderStatus)
        raise ValidationError(field, f"{value!r} is not one of {allowed}") from None
