"""The writer's argument and settings errors: exit 2 and one line, before any AWS call."""

from __future__ import annotations

import pytest

from writer.cli import build_parser, main


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        ([], "command"),
        (["put-order", "USR001"], "order_id"),
        (["put-user", "U1", "--name", "A"], "--email"),
        (["create-table", "--provisioned", "5"], "--provisioned"),
        (["create-table", "--provisioned", "0,5"], "--provisioned"),
        (["load", "--users", "-1", "--orders-per-user", "1"], "--users"),
        (["load", "--users", "2", "--orders-per-user", "many"], "--orders-per-user"),
        (["--table", "x", "orders", "USR001"], "ORDERSTREAM_TABLE"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("writer: error: ")
    assert field in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ORDERSTREAM_TABLE", "no spaces allowed"), ("ORDERSTREAM_LOG_FORMAT", "xml")],
)
def test_bad_settings_exit_2_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["orders", "USR001"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"writer: error: {variable}: ")


def test_provisioned_parses_read_and_write() -> None:
    args = build_parser().parse_args(["create-table", "--provisioned", "5,7"])
    assert args.provisioned == (5, 7)
    assert build_parser().parse_args(["create-table"]).provisioned is None


def test_put_order_defaults_to_pending() -> None:
    args = build_parser().parse_args(["put-order", "U1", "O1", "--amount", "5"])
    assert (args.status, args.amount) == ("Pending", "5")
