"""The writer's command line fuzzed (property-based) against a real moto server.

Random ids, names, emails, amounts and statuses — unicode, `#`, empty, 100 KB,
negative, NaN, 1e400, option-looking text, the lone surrogates a non-UTF-8 byte in
argv decodes to — go through `writer.cli.main(argv)` in-process, as the console script
would pass them. Whatever the input: the exit code is 0 or 2 (never 1, never an
exception), a refusal is one line on stderr, and a refusal wrote nothing (the table's
scan is unchanged).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for, scan_items
from writer import cli

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KNOWN_STATUSES = ["Pending", "Processing", "Shipped", "Delivered", "Cancelled"]
SEED_IDS = ["USR001", "USR002", "ORD1001", "ORD1002", "ORD1003"]

# -- strategies --------------------------------------------------------------------------

surrogates = st.text(  # what `writer x $'\xff'` decodes to under a UTF-8 locale
    alphabet=st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=3
)
weird = st.one_of(
    st.text(max_size=20),  # any unicode, control characters included
    st.sampled_from(["", " ", "#", "a#b", "USER#1", "ORDER#1", "ü", "\x00", "\n", "é" * 64]),
    st.sampled_from(["-", "--", "-x", "--help", "--force", "--amount", "--table", "-h"]),
    st.builds(lambda ch, n: ch * n, st.sampled_from("A#é\u2028"), st.sampled_from([65, 100_000])),
    st.builds(
        lambda base, bad: base + bad, st.sampled_from([*SEED_IDS, "Ada", "a@b.co"]), surrogates
    ),
)
ids = st.one_of(
    st.sampled_from(SEED_IDS),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    weird,
)
names = st.one_of(st.sampled_from(["Ada", "  Ada  ", "Zoë"]), st.text(max_size=300), weird)
emails = st.one_of(
    st.emails(),
    st.sampled_from(["a@b.co", "a@b", "@b.co", "a b@c.de", "a@b.c.", "x" * 250 + "@b.co"]),
    weird,
)
amounts = st.one_of(
    st.sampled_from(["NaN", "nan", "-NaN", "sNaN", "Infinity", "-inf", "1e400", "-1e400"]),
    st.sampled_from(["1e-400", "-0", "0", "0.00", "12.345", "-5", "-0.01", "1e12", "1E+2"]),
    st.sampled_from(["999999999999.99", " 7 ", "1_000", "\u0661\u0662\u0663", "0x10", ""]),
    st.sampled_from(["5,00", "+3"]),
    st.decimals().map(str),
    st.floats().map(repr),
    st.integers().map(str),
    weird,
)
statuses = st.one_of(
    st.sampled_from(KNOWN_STATUSES),
    st.sampled_from(["pending", "SHIPPED", "Returned", "Shipped ", ""]),
    weird,
)


def optional(flag: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), values.map(lambda value: [flag, value]))


put_user = st.tuples(ids, names, emails).map(
    lambda t: ["put-user", t[0], "--name", t[1], "--email", t[2]]
)
put_order = st.tuples(ids, ids, amounts, optional("--status", statuses)).map(
    lambda t: ["put-order", t[0], t[1], "--amount", t[2], *t[3]]
)
set_status = st.tuples(
    ids, ids, statuses, optional("--expect", statuses), st.sampled_from([[], ["--force"]])
).map(lambda t: ["set-status", t[0], t[1], t[2], *t[3], *t[4]])
orders = ids.map(lambda user_id: ["orders", user_id])
commands = st.one_of(put_user, put_order, set_status, orders)
argvs = st.tuples(
    optional("--table", st.one_of(st.just("Users"), st.just("Missing"), weird)), commands
).map(lambda t: [*t[0], *t[1]])


# -- the property ------------------------------------------------------------------------


@pytest.fixture
def scan(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    """The seeded Users table (the writer's own commands made it) and a way to read it."""
    monkeypatch.setenv("ORDERSTREAM_LOG_FORMAT", "json")
    assert cli.main(["create-table"]) == 0
    assert cli.main(["seed"]) == 0
    client: DynamoDBClient = client_for(moto_server.url)
    return lambda: scan_items(client, "Users")


@dataclass
class Outcome:
    code: int | str | None
    out: str
    err: str


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """main(argv) with stdout and stderr as a console script has them under a UTF-8
    locale: stdout strict, stderr `backslashreplace` (so an echoed undecodable byte is
    escaped, never an error). The code is main()'s, or a SystemExit's (--help)."""
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, "utf-8", errors="backslashreplace", write_through=True)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", stderr)
        code: int | str | None
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=argvs)
# Always tried, whatever Hypothesis draws: the cases that once slipped through.
@example(argv=["put-user", "USR009", "--name", "Zo\udcff", "--email", "zoe@example.com"])
@example(argv=["put-user", "USR009", "--name", "Zoe", "--email", "zoe@example.co\udcff"])
@example(argv=["put-order", "USR001", "ORD9", "--amount", "NaN"])
@example(argv=["put-order", "USR001", "ORD9", "--amount", "1e400"])
@example(argv=["set-status", "USR001", "--help", "Shipped"])
@example(argv=["set-status", "USR001", "ORD1001", "Delivered", "--", "two\nlines"])
def test_any_arguments_exit_0_or_2_and_a_refusal_writes_nothing(
    argv: list[str], scan: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = scan()

    result = run(argv, monkeypatch)

    event(f"exit {result.code}")
    assert result.code in (0, 2), (argv, result)
    if result.code == 2:
        assert result.err.startswith("writer: error: "), result.err
        assert result.err.count("\n") == 1, result.err  # one line
        assert scan() == before
    elif argv[-2:-1] != ["orders"] and not {"--help", "-h"} & set(argv):
        assert result.out.strip(), argv  # a write that succeeded prints what it wrote
