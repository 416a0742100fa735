"""Validation of IDs, names, emails, amounts, statuses and settings (pure, no network)."""

from __future__ import annotations

import re
import unicodedata
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

# The rule from docs/design.md section 2, spelled out independently of the code under test.
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


# Every control (Cc) and format (Cf) character the review found accepted, and more.
HIDDEN = [
    ("\x1b", "U+001B"),  # ESC: starts terminal escape sequences
    ("\x7f", "U+007F"),  # DEL
    ("\x9b", "U+009B"),  # C1 CSI: a one-byte escape introducer on some terminals
    ("\x85", "U+0085"),  # NEL: a line break to some readers
    ("\x00", "U+0000"),
    ("\t", "U+0009"),
    ("\u202e", "U+202E"),  # RIGHT-TO-LEFT OVERRIDE
    ("\u2066", "U+2066"),  # LEFT-TO-RIGHT ISOLATE
    ("\u200b", "U+200B"),  # ZERO WIDTH SPACE
    ("\u200d", "U+200D"),  # ZERO WIDTH JOINER
    ("\ufeff", "U+FEFF"),  # BYTE ORDER MARK / ZWNBSP
    ("\u00ad", "U+00AD"),  # SOFT HYPHEN
    ("\u2028", "U+2028"),  # LINE SEPARATOR
    ("\U000e0041", "U+E0041"),  # TAG LATIN CAPITAL LETTER A
    ("\udc80", "U+DC80"),  # a byte of argv that was not UTF-8
]


@pytest.mark.parametrize(("char", "code"), HIDDEN)
def test_names_refuse_control_and_format_characters_naming_which(char: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_name(f"Al{char}ice")
    assert info.value.field == "name"
    assert f"{code} at position 3" in info.value.reason


@pytest.mark.parametrize(("char", "code"), HIDDEN)
def test_emails_refuse_control_and_format_characters_naming_which(char: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_email(f"pw{char}n@x.co")
    assert info.value.field == "email"
    assert f"{code} at position 3" in info.value.reason


def test_the_reviews_terminal_escape_email_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        check_email("\x1b[2J\x1b[31mpwn@x.co")
    assert info.value.reason.startswith("U+001B at position 1 ")


def test_a_control_character_at_the_edge_is_not_trimmed_away() -> None:
    with pytest.raises(ValidationError) as info:
        check_name("Alice\x1f")  # str.strip() would have removed U+001F silently
    assert "U+001F at position 6" in info.value.reason


@FAST
@given(st.text(min_size=1, max_size=20))
def test_no_name_or_email_keeps_a_control_or_format_character(value: str) -> None:
    for check in (check_name, check_email):
        try:
            kept = check(value)
        except ValidationError:
            continue
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in kept)


@pytest.mark.parametrize("value", ["Zoë", "李雷", "José María", "O'Brien", "Ørsted-Åse", "  Bob  "])
def test_names_in_any_script_are_still_accepted(value: str) -> None:
    assert check_name(value) == value.strip()


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
        ("7.5", Decimal("7.5")),
        ("0.10", Decimal("0.10")),
        ("0.00", Decimal("0.00")),
        ("007", Decimal("7")),
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
        ("-0", "negative"),
        ("1.005", "more than 2 decimal places"),
        ("0.001", "more than 2 decimal places"),
        ("5." + "0" * 40, "more than 2 decimal places"),  # was cut to 28 places
        ("1" + "0" * 40, "too large"),
        ("1000000000000", "too large"),
        ("abc", "not a plain decimal"),
        ("", "not a plain decimal"),
        ("1,5", "not a plain decimal"),
        ("NaN", "not a plain decimal"),
        ("nan", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        ("-Infinity", "not a plain decimal"),
        ("sNaN", "not a plain decimal"),
        ("\u0665", "not a plain decimal"),  # ARABIC-INDIC DIGIT FIVE: Decimal reads 5
        ("\uff15", "not a plain decimal"),  # FULLWIDTH DIGIT FIVE
        ("1_000.5", "not a plain decimal"),  # Decimal reads 1000.5
        ("0e-7", "not a plain decimal"),  # was stored as "0E-7"
        ("0e-999999999", "not a plain decimal"),  # was stored as "0E-1000026"
        ("1e2", "not a plain decimal"),
        ("1e12", "not a plain decimal"),
        ("+5", "not a plain decimal"),
        (" 5", "not a plain decimal"),
        ("5 ", "not a plain decimal"),
        ("5\n", "not a plain decimal"),
        (".5", "not a plain decimal"),
        ("5.", "not a plain decimal"),
        ("5..0", "not a plain decimal"),
        ("0x10", "not a plain decimal"),
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
        parse_amount(19.99)  # type: ignore[arg-type]  # a float on purpose: it must be refused


def test_amounts_are_stored_as_plain_decimal_text() -> None:
    assert str(parse_amount("2.50")) == "2.50"
    assert str(parse_amount("0")) == "0"
    # A Decimal from the Python API passes the same rule, judged by its plain text.
    assert str(parse_amount(Decimal("1E+2"))) == "100"
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        parse_amount(Decimal("0E-7"))
    with pytest.raises(ValidationError, match="negative"):
        parse_amount(Decimal("-0"))
    with pytest.raises(ValidationError, match="not a plain decimal"):
        parse_amount(Decimal("NaN"))


@FAST
@given(st.text(max_size=16))
def test_any_accepted_amount_was_typed_as_ascii_digits_and_prints_as_typed(value: str) -> None:
    try:
        amount = parse_amount(value)
    except ValidationError:
        return
    assert re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", value)
    assert amount == Decimal(value)
    assert re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", str(amount))  # no exponent, no sign


@FAST
@given(
    st.integers(min_value=1, max_value=10**12).filter(lambda n: n % 10 != 0),
    st.integers(min_value=3, max_value=10),
)
def test_any_amount_with_more_than_two_places_is_rejected(digits: int, places: int) -> None:
    value = Decimal(digits).scaleb(-places)  # exactly `places` places, the last non-zero
    with pytest.raises(ValidationError, match="more than 2 decimal places"):
        parse_amount(format(value, "f"))


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
