"""Users and orders through `writer.OrderRepository` against a real moto_server over HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for, scan_items
from writer import OrderRepository, OrderStatus, aws
from writer.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    IllegalTransitionError,
    NotFoundError,
)
from writer.models import is_allowed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Scan = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def client(moto_server: MotoServer) -> DynamoDBClient:
    """The test's own client, to look at the table or write as another program would."""
    return client_for(moto_server.url)


@pytest.fixture
def writer_client(moto_server: MotoServer) -> DynamoDBClient:
    """The repository's own client, with the writer's retry configuration."""
    return client_for(moto_server.url, aws.RETRY_CONFIG)


@pytest.fixture
def repo(writer_client: DynamoDBClient) -> OrderRepository:
    """A repository on a fresh table holding user USR001."""
    repo = OrderRepository(writer_client)
    repo.create_table()
    repo.put_user("USR001", "Alice", "alice@email.com")
    return repo


@pytest.fixture
def scan_table(client: DynamoDBClient) -> Scan:
    return lambda: scan_items(client, "Users")


def raw_order(client: DynamoDBClient, user_id: str, order_id: str) -> dict[str, Any]:
    key = {"PK": {"S": f"USER#{user_id}"}, "SK": {"S": f"ORDER#{order_id}"}}
    return client.get_item(TableName="Users", Key=key, ConsistentRead=True)["Item"]


def count_query_pages(client: DynamoDBClient) -> list[int]:
    """Record each Query response's item count as it comes back."""
    pages: list[int] = []
    client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: pages.append(parsed["Count"])
    )
    return pages


# -- users ---------------------------------------------------------------------------


def test_put_user_replaces_the_profile(repo: OrderRepository, scan_table: Scan) -> None:
    repo.put_user("USR001", "Alice Smith", "alice@example.org")
    (profile,) = scan_table()
    assert profile["Name"] == {"S": "Alice Smith"}
    assert profile["Email"] == {"S": "alice@example.org"}
    assert profile["UserID"] == {"S": "USR001"}


# -- put_order -----------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["19.99", "0.10", "0", "999999999999.99", Decimal("30.5")])
def test_amounts_stay_exact_decimals_end_to_end(
    repo: OrderRepository, client: DynamoDBClient, amount: str | Decimal
) -> None:
    written = repo.put_order("USR001", "ORD1", amount)
    assert raw_order(client, "USR001", "ORD1")["Amount"] == {"N": str(amount)}
    (read,) = repo.orders("USR001")
    assert isinstance(written.amount, Decimal)
    assert isinstance(read.amount, Decimal)
    assert read.amount == written.amount == Decimal(amount)


def test_timestamps_are_iso_8601_utc(repo: OrderRepository) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    order = repo.put_order("USR001", "ORD1", "5")
    _, moved = repo.set_status("USR001", "ORD1", OrderStatus.PROCESSING)
    end = datetime.now(UTC) + timedelta(seconds=1)
    for text in (order.created_at, order.updated_at, moved.updated_at):
        assert text is not None
        assert text.endswith("Z")
        stamp = datetime.fromisoformat(text)
        assert stamp.utcoffset() == timedelta(0)
        assert start <= stamp <= end
    (stored,) = repo.orders("USR001")
    assert stored.created_at == order.created_at  # CreatedAt survives the update
    assert stored.updated_at == moved.updated_at


def test_the_clock_is_injected(writer_client: DynamoDBClient, client: DynamoDBClient) -> None:
    repo = OrderRepository(writer_client, clock=lambda: "2030-01-02T03:04:05.678Z")
    repo.create_table()
    repo.put_user("U1", "Ann", "ann@example.com")
    repo.put_order("U1", "O1", "1")
    item = raw_order(client, "U1", "O1")
    assert item["CreatedAt"] == item["UpdatedAt"] == {"S": "2030-01-02T03:04:05.678Z"}


def test_put_order_needs_the_user(repo: OrderRepository, scan_table: Scan) -> None:
    before = scan_table()
    with pytest.raises(NotFoundError, match=r"^user_id: user 'USR999' does not exist$"):
        repo.put_order("USR999", "ORD1", "5")
    assert scan_table() == before


def test_put_order_never_overwrites(repo: OrderRepository, scan_table: Scan) -> None:
    repo.put_order("USR001", "ORD1", "5", OrderStatus.SHIPPED)
    before = scan_table()
    with pytest.raises(AlreadyExistsError, match=r"^order_id: order 'ORD1' already exists$"):
        repo.put_order("USR001", "ORD1", "7")
    assert scan_table() == before


# -- set_status ----------------------------------------------------------------------


def test_an_order_walks_the_happy_path(repo: OrderRepository, client: DynamoDBClient) -> None:
    repo.put_order("USR001", "ORD1", "5")
    path = [OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
    previous = OrderStatus.PENDING
    for status in path:
        before, after = repo.set_status("USR001", "ORD1", status)
        assert (before.status, after.status) == (previous, status)
        assert raw_order(client, "USR001", "ORD1")["Status"] == {"S": status.value}
        previous = status


@pytest.mark.parametrize(("old", "new"), list(itertools.product(OrderStatus, repeat=2)))
def test_every_transition_is_enforced_by_the_table(
    repo: OrderRepository, scan_table: Scan, old: OrderStatus, new: OrderStatus
) -> None:
    repo.put_order("USR001", "ORD1", "5", old)
    before = scan_table()
    if is_allowed(old, new):
        repo.set_status("USR001", "ORD1", new)
        (order,) = repo.orders("USR001")
        assert order.status is new
    else:
        with pytest.raises(IllegalTransitionError, match=r"^status: "):
            repo.set_status("USR001", "ORD1", new)
        assert scan_table() == before


def test_the_rule_is_checked_by_the_write_itself(
    repo: OrderRepository, writer_client: DynamoDBClient, client: DynamoDBClient
) -> None:
    """Another writer cancels the order just before our update lands: the condition wins."""
    repo.put_order("USR001", "ORD1", "5", OrderStatus.PROCESSING)
    key = {"PK": {"S": "USER#USR001"}, "SK": {"S": "ORDER#ORD1"}}

    def cancel_first(**_: Any) -> None:
        writer_client.meta.events.unregister("before-call.dynamodb.UpdateItem", cancel_first)
        client.update_item(
            TableName="Users",
            Key=key,
            UpdateExpression="SET #s = :c",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":c": {"S": "Cancelled"}},
        )

    writer_client.meta.events.register("before-call.dynamodb.UpdateItem", cancel_first)
    with pytest.raises(IllegalTransitionError, match="Cancelled -> Shipped is not allowed"):
        repo.set_status("USR001", "ORD1", OrderStatus.SHIPPED)
    assert raw_order(client, "USR001", "ORD1")["Status"] == {"S": "Cancelled"}


def test_expect_guards_against_a_concurrent_change(repo: OrderRepository, scan_table: Scan) -> None:
    repo.put_order("USR001", "ORD1", "5", OrderStatus.PROCESSING)
    before = scan_table()
    with pytest.raises(ConcurrentUpdateError, match="expected Pending but the order is Processing"):
        repo.set_status("USR001", "ORD1", OrderStatus.CANCELLED, expect=OrderStatus.PENDING)
    assert scan_table() == before
    _, after = repo.set_status("USR001", "ORD1", OrderStatus.SHIPPED, expect=OrderStatus.PROCESSING)
    assert after.status is OrderStatus.SHIPPED


def test_force_skips_the_rule(repo: OrderRepository, client: DynamoDBClient) -> None:
    repo.put_order("USR001", "ORD1", "5", OrderStatus.DELIVERED)
    before, after = repo.set_status("USR001", "ORD1", OrderStatus.PENDING, force=True)
    assert (before.status, after.status) == (OrderStatus.DELIVERED, OrderStatus.PENDING)
    assert raw_order(client, "USR001", "ORD1")["Status"] == {"S": "Pending"}


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.SHIPPED])
def test_a_missing_order_is_never_created(
    repo: OrderRepository, scan_table: Scan, force: bool, status: OrderStatus
) -> None:
    before = scan_table()
    with pytest.raises(NotFoundError, match=r"^order_id: order 'NOPE' of user 'USR001'"):
        repo.set_status("USR001", "NOPE", status, force=force)
    assert scan_table() == before


def test_orders_of_other_clients_with_unknown_status(
    repo: OrderRepository, client: DynamoDBClient
) -> None:
    client.put_item(
        TableName="Users",
        Item={
            "PK": {"S": "USER#USR001"},
            "SK": {"S": "ORDER#EXT1"},
            "UserID": {"S": "USR001"},
            "Amount": {"N": "12.345"},
            "Status": {"S": "Returned"},
        },
    )
    (order,) = repo.orders("USR001")
    assert (order.status, order.amount, order.created_at) == ("Returned", Decimal("12.345"), None)
    with pytest.raises(IllegalTransitionError, match="Returned -> Processing is not allowed"):
        repo.set_status("USR001", "EXT1", OrderStatus.PROCESSING)


# -- orders (the GSI, every page) ----------------------------------------------------


def test_orders_reads_every_page(repo: OrderRepository, writer_client: DynamoDBClient) -> None:
    """A page size of 2 (injected into the repository's own client) forces many pages."""
    repo.put_user("USR002", "Bob", "bob@email.com")
    for n in range(7):
        repo.put_order("USR001", f"ORD{n}", f"{n}.50")
    repo.put_order("USR002", "OTHER", "1")
    writer_client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: params.update(Limit=2)
    )
    pages = count_query_pages(writer_client)

    orders = list(repo.orders("USR001"))

    assert len(pages) >= 4  # 8 GSI items (7 orders + the profile), 2 a page
    assert sorted(o.order_id for o in orders) == [f"ORD{n}" for n in range(7)]
    assert {o.amount for o in orders} == {Decimal(f"{n}.50") for n in range(7)}


def test_orders_follows_the_1mb_page_limit(
    repo: OrderRepository, writer_client: DynamoDBClient, client: DynamoDBClient
) -> None:
    """Big orders written by another program: DynamoDB stops a page at 1 MB."""
    padding = "x" * 250_000
    for n in range(5):
        client.put_item(
            TableName="Users",
            Item={
                "PK": {"S": "USER#USR001"},
                "SK": {"S": f"ORDER#BIG{n}"},
                "UserID": {"S": "USR001"},
                "Amount": {"N": "1"},
                "Status": {"S": "Pending"},
                "Notes": {"S": padding},
            },
        )
    pages = count_query_pages(writer_client)

    orders = list(repo.orders("USR001"))

    assert len(pages) > 1
    assert sorted(o.order_id for o in orders) == [f"BIG{n}" for n in range(5)]


def test_orders_of_a_user_without_orders_is_empty(repo: OrderRepository) -> None:
    assert list(repo.orders("USR001")) == []
    assert list(repo.orders("NOBODY")) == []


# -- the Python API as docs/writer.md shows it -------------------------------------


def test_python_api_docs_example(moto_server: MotoServer) -> None:
    repo = OrderRepository(boto3.client("dynamodb", region_name="us-east-1"), table="Orders")
    repo.create_table()
    repo.put_user("USR001", "Alice", "alice@email.com")
    repo.put_order("USR001", "ORD1001", "50.00")
    before, after = repo.set_status("USR001", "ORD1001", OrderStatus.PROCESSING)

    assert (before.status, after.status) == ("Pending", "Processing")
    assert [(o.order_id, o.amount, o.status) for o in repo.orders("USR001")] == [
        ("ORD1001", Decimal("50.00"), OrderStatus.PROCESSING)
    ]
