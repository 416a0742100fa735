"""The `writer` console script run as a user runs it, against a moto_server over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for, scan_items
from writer import OrderRepository
from writer.seed import seed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITER = Path(sys.executable).parent / "writer"
RunWriter = Callable[..., subprocess.CompletedProcess[str]]
Scan = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def run_writer(cli_env: dict[str, str]) -> RunWriter:
    """Run `writer *args` in a subprocess; `env` replaces or (with None values) drops variables."""

    def run(
        *args: str, env: dict[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**cli_env, **(env or {})}
        final = {key: value for key, value in full_env.items() if value is not None}
        return subprocess.run(
            [str(WRITER), *args], env=final, capture_output=True, text=True, timeout=60, check=False
        )

    return run


@pytest.fixture
def client(moto_server: MotoServer) -> DynamoDBClient:
    return client_for(moto_server.url)


@pytest.fixture
def scan_table(client: DynamoDBClient) -> Scan:
    return lambda table="Users": scan_items(client, table)


@pytest.fixture
def seeded_table(client: DynamoDBClient) -> OrderRepository:
    """The seed document's data, written in-process (the CLI's own seed is tested below)."""
    repo = OrderRepository(client)
    repo.create_table()
    seed(repo)
    return repo


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


def error_line(result: subprocess.CompletedProcess[str], exit_code: int = 2) -> str:
    """The one stderr line of a failed run; nothing on stdout."""
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("writer: error: ")
    return line


# -- success -------------------------------------------------------------------------


def test_create_table_seed_and_orders(run_writer: RunWriter) -> None:
    """The issue's acceptance: `writer create-table && writer seed && writer orders USR001`."""
    assert json_lines(run_writer("create-table")) == [
        {"table": "Users", "created": True, "status": "ACTIVE"}
    ]
    assert json_lines(run_writer("seed")) == [{"users": 2, "orders_created": 3}]

    orders = sorted(json_lines(run_writer("orders", "USR001")), key=lambda o: o["order_id"])

    assert [(o["user_id"], o["order_id"], o["amount"], o["status"]) for o in orders] == [
        ("USR001", "ORD1001", "50", "Shipped"),
        ("USR001", "ORD1002", "30", "Processing"),
    ]
    assert all(o["created_at"].endswith("Z") for o in orders)


def test_create_table_twice(run_writer: RunWriter) -> None:
    assert json_lines(run_writer("create-table"))[0]["created"] is True
    assert json_lines(run_writer("create-table"))[0]["created"] is False


def test_create_table_provisioned(run_writer: RunWriter, client: DynamoDBClient) -> None:
    json_lines(run_writer("--table", "Orders", "create-table", "--provisioned", "5,5"))
    table = client.describe_table(TableName="Orders")["Table"]
    for throughput in (
        table["ProvisionedThroughput"],
        table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"],
    ):
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (5, 5)


def test_create_table_refuses_a_table_of_another_shape(
    run_writer: RunWriter, client: DynamoDBClient
) -> None:
    client.create_table(
        TableName="Users",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    line = error_line(run_writer("create-table"))
    assert "'Users' has key schema" in line
    assert "not PK (HASH) + SK (RANGE)" in line


def test_put_user_creates_then_replaces(
    run_writer: RunWriter, seeded_table: OrderRepository, scan_table: Scan
) -> None:
    (user,) = json_lines(run_writer("put-user", "USR003", "--name", "Carol", "--email", "c@x.io"))
    assert (user["user_id"], user["name"], user["email"]) == ("USR003", "Carol", "c@x.io")
    json_lines(run_writer("put-user", "USR003", "--name", "Caroline", "--email", "c@y.io"))
    profiles = [i for i in scan_table() if i["PK"]["S"] == "USER#USR003"]
    assert [(p["Name"]["S"], p["Email"]["S"]) for p in profiles] == [("Caroline", "c@y.io")]


def test_put_order_keeps_the_amount_exact(
    run_writer: RunWriter, seeded_table: OrderRepository, client: DynamoDBClient
) -> None:
    (order,) = json_lines(run_writer("put-order", "USR002", "ORD2001", "--amount", "19.90"))
    assert (order["amount"], order["status"]) == ("19.90", "Pending")
    key = {"PK": {"S": "USER#USR002"}, "SK": {"S": "ORDER#ORD2001"}}
    assert client.get_item(TableName="Users", Key=key)["Item"]["Amount"] == {"N": "19.90"}
    listed = {o["order_id"]: o["amount"] for o in json_lines(run_writer("orders", "USR002"))}
    assert listed == {"ORD1003": "100", "ORD2001": "19.90"}


def test_set_status_moves_an_order(run_writer: RunWriter, seeded_table: OrderRepository) -> None:
    (moved,) = json_lines(
        run_writer("set-status", "USR001", "ORD1002", "Shipped", "--expect", "Processing")
    )
    assert (moved["old_status"], moved["status"]) == ("Processing", "Shipped")
    assert moved["updated_at"] != moved["created_at"]
    (order,) = [o for o in json_lines(run_writer("orders", "USR001")) if o["order_id"] == "ORD1002"]
    assert order["status"] == "Shipped"


def test_set_status_force_skips_the_rule(
    run_writer: RunWriter, seeded_table: OrderRepository
) -> None:
    (moved,) = json_lines(run_writer("set-status", "USR002", "ORD1003", "Pending", "--force"))
    assert (moved["old_status"], moved["status"]) == ("Delivered", "Pending")


def test_load_and_list_every_order(run_writer: RunWriter, scan_table: Scan) -> None:
    json_lines(run_writer("create-table"))
    result = run_writer("load", "--users", "2", "--orders-per-user", "40", "--updates", "5")
    assert json_lines(result) == [{"users": 2, "orders": 80, "updates": 5}]
    assert len(scan_table()) == 2 + 80
    orders = json_lines(run_writer("orders", "LOADU000001"))
    assert sorted(o["order_id"] for o in orders) == [f"LOADO000001-{m:04d}" for m in range(40)]


# -- bad input: exit 2, one line naming the field, the table unchanged ---------------

BAD_INPUT = [
    (("put-user", "U#1", "--name", "Al", "--email", "al@x.io"), "user_id"),
    (("put-user", "U1", "--name", "Al", "--email", "not-an-address"), "email"),
    (("put-user", "U1", "--name", " ", "--email", "al@x.io"), "name"),
    (("put-user", "U1", "--email", "al@x.io"), "--name"),
    (("put-order", "USR001", "ORD 9", "--amount", "5"), "order_id"),
    (("put-order", "USR001", "ORD9", "--amount", "1.005"), "amount"),
    (("put-order", "USR001", "ORD9", "--amount", "-5"), "amount"),
    (("put-order", "USR001", "ORD9", "--amount", "ten"), "amount"),
    (("put-order", "USR001", "ORD9", "--amount", "\u0665"), "amount"),  # stored as 5 before
    (("put-order", "USR001", "ORD9", "--amount", "1_000.5"), "amount"),
    (("put-order", "USR001", "ORD9", "--amount", "0e-7"), "amount"),
    (("put-user", "U3", "--name", "x", "--email", "\x1b[2J\x1b[31mpwn@x.co"), "email: U+001B"),
    (("put-user", "U3", "--name", "Mallory\u202e", "--email", "m@x.co"), "name: U+202E"),
    (("put-order", "USR001", "ORD9", "--amount", "5", "--status", "Lost"), "status"),
    (("put-order", "USR999", "ORD9", "--amount", "5"), "user_id: user 'USR999' does not exist"),
    (("put-order", "USR001", "ORD1001", "--amount", "5"), "order_id: order 'ORD1001' already"),
    (("set-status", "USR001", "ORD1001", "Pending"), "status: no order may move to Pending"),
    (("set-status", "USR001", "ORD1001", "Cancelled"), "status: Shipped -> Cancelled"),
    (("set-status", "USR002", "ORD1003", "Shipped"), "status: Delivered -> Shipped"),
    (("set-status", "USR001", "ORD1002", "Shipped", "--expect", "Pending"), "status: expected"),
    (("set-status", "USR001", "ORD1002", "Lost"), "status"),
    (("set-status", "USR001", "ORD1002", "Shipped", "--expect", "Lost"), "expect"),
    (("set-status", "USR001", "ORD9999", "Shipped"), "order_id: order 'ORD9999'"),
    (("set-status", "USR001", "ORD9999", "Shipped", "--force"), "order_id: order 'ORD9999'"),
    (("set-status", "USR999", "ORD1001", "Delivered"), "order_id: order 'ORD1001'"),
    (("orders", "USR#001"), "user_id"),
    (("load", "--users", "x", "--orders-per-user", "1"), "--users"),
    (("create-table", "--provisioned", "five"), "--provisioned"),
    (("--table", "x", "seed"), "ORDERSTREAM_TABLE"),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_and_changes_nothing(
    run_writer: RunWriter,
    seeded_table: OrderRepository,
    scan_table: Scan,
    args: tuple[str, ...],
    field: str,
) -> None:
    before = scan_table()
    line = error_line(run_writer(*args))
    assert field in line
    assert scan_table() == before


# -- AWS trouble the user can fix ----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("orders", "USR001"),
        ("put-user", "USR001", "--name", "Al", "--email", "al@x.io"),
        ("put-order", "USR001", "ORD1", "--amount", "1"),
        ("set-status", "USR001", "ORD1", "Shipped"),
        ("seed",),
    ],
)
def test_no_such_table(
    run_writer: RunWriter, moto_server: MotoServer, args: tuple[str, ...]
) -> None:
    line = error_line(run_writer(*args))
    assert line == (
        f"writer: error: table 'Users' does not exist (region us-east-1, {moto_server.url}): "
        "create it with `writer create-table`, or check AWS_REGION and AWS_ENDPOINT_URL"
    )


def test_no_credentials(run_writer: RunWriter) -> None:
    no_keys = dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    line = error_line(run_writer("orders", "USR001", env=no_keys))
    assert "no AWS credentials found" in line


def test_no_region(run_writer: RunWriter) -> None:
    line = error_line(
        run_writer("orders", "USR001", env=dict.fromkeys(("AWS_REGION", "AWS_DEFAULT_REGION")))
    )
    assert "no AWS region set" in line
