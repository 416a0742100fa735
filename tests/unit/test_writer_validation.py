"""Validation of IDs, names, emails, amounts, statuses and settings (pure, no network)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writer.errors import BadInputError, ValidationError
from writer.models import OrderStatus
from writer.settings import WriterSettings
from writer.validation import (
    check_email,
    check_id,
    check_name,
    parse_amount,
    parse_status,
)

# The rule from DESIGN.md section 2, spelled out independently of the code under test.
DESIGN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FAST = settings(max_examples=100, deadline=None)


# -- IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["USR001", "ORD1001", "a", "A-b_9", "x" * 64])
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert check_id("user_id", value) == value


@pytest.mark.parametrize(
    "value",
    ["", "USER#1", "a b", "x" * 65, "ünï", "abc\n", "a/b", "ORDER#1", "a.b", "\x00"],
)
def test_invalid_ids_name_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_id("order_id", value)
    assert info.value.field == "order_id"
    assert str(info.value).startswith("order_id: ")
    assert info.value.exit_code == 2


@FAST
@given(st.text(max_size=80).filter(lambda s: DESIGN_ID.fullmatch(s) is None))
def test_any_string_outside_the_id_rule_is_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        check_id("user_id", value)


@FAST
@given(st.from_regex(DESIGN_ID, fullmatch=True))
def test_any_string_inside_the_id_rule_is_accepted(value: str) -> None:
    assert check_id("user_id", value) == value


# -- names and emails ----------------------------------------------------------------


def test_name_is_stripped() -> None:
    assert check_name("  Alice  ") == "Alice"


@pytest.mark.parametrize("value", ["", "   ", "Al\x07ice", "x" * 257])
def test_bad_names_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_name(value)
    assert info.value.field == "name"


@pytest.mark.parametrize("value", ["alice@email.com", "a.b+tag@sub.example.org", "x@y.io"])
def test_addresses_are_accepted(value: str) -> None:
    assert check_email(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "alice", "alice@", "@email.com", "alice@email", "a b@c.de", "a@b@c.de", "a@b.", "a@b.c."],
)
def test_non_addresses_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_email(value)
    assert info.value.field == "email"


def test_overlong_email_is_rejected() -> None:
    with pytest.raises(ValidationError):
        check_email("a" * 250 + "@b.co")


# -- amounts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", Decimal("0")),
        ("50", Decimal("50")),
        ("19.99", Decimal("19.99")),
        (" 7.5 ", Decimal("7.5")),
        ("0.10", Decimal("0.10")),
        (Decimal("30"), Decimal("30")),
        ("999999999999.99", Decimal("999999999999.99")),
    ],
)
def test_valid_amounts_parse_to_exact_decimals(value: str | Decimal, expected: Decimal) -> None:
    amount = parse_amount(value)
    assert isinstance(amount, Decimal)
    assert amount == expected
    assert str(amount) == str(expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("1.005", "more than 2 decimal places"),
        ("0.001", "more than 2 decimal places"),
        ("abc", "not a decimal number"),
        ("", "not a decimal number"),
        ("1,5", "not a decimal number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("1e12", "too large"),
    ],
)
def test_bad_amounts_name_the_field_and_reason(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_amount(value)
    assert info.value.field == "amount"
    assert reason in info.value.reason


def test_float_amounts_are_refused() -> None:
    # A float has already lost the exact value; the writer only takes text or Decimal.
    with pytest.raises(ValidationError):
        parse_amount(19.99)  # type: ignore[arg-type]


def test_amounts_are_stored_as_plain_decimal_text() -> None:
    # "1e2" is a valid amount, but a money field must not print as "1E+2", nor "-0".
    assert str(parse_amount("1e2")) == "100"
    assert str(parse_amount("-0")) == "0"
    assert str(parse_amount("2.50")) == "2.50"


@FAST
@given(
    st.integers(min_value=1, max_value=10**12).filter(lambda n: n % 10 != 0),
    st.integers(min_value=3, max_value=10),
)
def test_any_amount_with_more_than_two_places_is_rejected(digits: int, places: int) -> None:
    value = Decimal(digits).scaleb(-places)  # exactly `places` places, the last non-zero
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        parse_amount(str(value))


@FAST
@given(st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2))
def test_any_non_negative_amount_with_two_places_is_accepted(value: Decimal) -> None:
    assert parse_amount(str(value)) == value


# -- statuses ------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(OrderStatus))
def test_every_status_parses(status: OrderStatus) -> None:
    assert parse_status(status.value) is status


@pytest.mark.parametrize("value", ["pending", "Returned", "", "SHIPPED"])
def test_unknown_statuses_are_rejected_with_the_choices(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_status(value, "expect")
    assert info.value.field == "expect"
    assert "Pending, Processing, Shipped, Delivered, Cancelled" in info.value.reason


# -- settings ------------------------------------------------------------------------


def test_settings_defaults() -> None:
    assert WriterSettings.from_env({}) == WriterSettings("Users", "auto", None)


def test_settings_flag_wins_over_environment() -> None:
    env = {"ORDERSTREAM_TABLE": "FromEnv", "ORDERSTREAM_LOG_FORMAT": "json"}
    assert WriterSettings.from_env(env).table == "FromEnv"
    assert WriterSettings.from_env(env, table="FromFlag").table == "FromFlag"
    assert WriterSettings.from_env(env).log_format == "json"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"ORDERSTREAM_TABLE": "ab"}, "ORDERSTREAM_TABLE"),
        ({"ORDERSTREAM_TABLE": "bad name"}, "ORDERSTREAM_TABLE"),
        ({"ORDERSTREAM_LOG_FORMAT": "xml"}, "ORDERSTREAM_LOG_FORMAT"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], setting: str) -> None:
    with pytest.raises(BadInputError, match=f"^{setting}: "):
        WriterSettings.from_env(env)


def test_region_from_either_variable() -> None:
    assert WriterSettings.from_env({"AWS_REGION": "eu-west-1"}).region == "eu-west-1"
    both = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}
    assert WriterSettings.from_env(both).region == "us-west-2"
