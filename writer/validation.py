"""Input validation: IDs, emails, amounts and statuses, each failure naming its field."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from writer.errors import ValidationError
from writer.models import OrderStatus

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Deliberately loose: one @, a dot in the domain, no spaces. Deliverability is the mail
# server's business; this only rejects what is plainly not an address.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_NAME_LENGTH = 256
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_AMOUNT = Decimal("1e12")


def check_id(field: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValidationError(field, f"{value!r} must match {ID_PATTERN.pattern}")
    return value


def _is_text(value: str) -> bool:
    """Encodable as UTF-8. Bytes in argv that are not UTF-8 arrive as lone surrogates,
    which DynamoDB cannot store: refuse them here, as bad input, before any call."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValidationError("name", "must not be empty")
    if (
        len(stripped) > MAX_NAME_LENGTH
        or any(ord(c) < 32 for c in stripped)
        or not _is_text(stripped)
    ):
        raise ValidationError("name", f"must be at most {MAX_NAME_LENGTH} printable characters")
    return stripped


def check_email(value: str) -> str:
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(value) or not _is_text(value):
        raise ValidationError("email", f"{value!r} does not look like an address")
    return value


def parse_amount(value: str | Decimal) -> Decimal:
    """A non-negative decimal with at most 2 places; never a float on the way."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise ValidationError("amount", f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValidationError("amount", f"{value!r} is not a finite number")
    if amount < 0:
        raise ValidationError("amount", f"{value!r} is negative")
    if amount >= MAX_AMOUNT:
        raise ValidationError("amount", f"{value!r} is too large")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationError("amount", f"{value!r} has more than 2 decimal places")
    # Plain decimal text on the way out: "1e2" is stored as 100 (not "1E+2"), "-0" as 0.
    return Decimal(f"{abs(amount):f}")


def parse_status(value: str, field: str = "status") -> OrderStatus:
    try:
        return OrderStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in OrderStatus)
        raise ValidationError(field, f"{value!r} is not one of {allowed}") from None
